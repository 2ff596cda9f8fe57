"""COPY text of every kind of value the MES writer stores reads back from PostgreSQL unchanged."""

import datetime
import decimal
import io

import psycopg2
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.process_store import copy_text
from ccl.domain.telegrams import PLANT_TZ
from tests.support.database import fresh_database


class CopyTextTests(TestCase):
    def test_values_round_trip_through_copy(self):
        """Every kind of value (text with tabs, Korean, bytes, NULL, ...) reads back unchanged via COPY."""
        dsn = fresh_database(self)
        moment = datetime.datetime(2026, 11, 27, 8, 30, 1, tzinfo=PLANT_TZ)
        rows = [
            ("plain", 7, decimal.Decimal("0.372"), moment, datetime.date(2026, 2, 28), True, b"\x00\t\\raw"),
            ("tab\tnewline\nreturn\rback\\slash 한글 똠", -3, None, None, None, False, bytearray(b"\xff")),
            (None, None, decimal.Decimal("12"), moment.astimezone(datetime.timezone.utc), None, None,
             memoryview(b"view")),
        ]

        class Label(str):  # a subclass takes the general path, with the same result
            pass

        rows.append((Label("sub\tclass"), 1, None, None, None, None, b""))
        data = io.StringIO("".join("\t".join(copy_text(v) for v in row) + "\n" for row in rows))
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (s text, i int, d numeric, m timestamptz, day date, b boolean, r bytea)")
            cursor.copy_expert("COPY t FROM STDIN", data)
            cursor.execute("SELECT s, i, d, m, day, b, r FROM t ORDER BY ctid")
            back = cursor.fetchall()
        expected = [tuple(bytes(v) if isinstance(v, (bytearray, memoryview)) else v for v in row) for row in rows]
        self.assertEqual([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in back],
                         expected)
        self.assertEqual(copy_text(1.5), "1.5")
        self.assertEqual(copy_text(datetime.time(5, 6, 7)), "05:06:07")
