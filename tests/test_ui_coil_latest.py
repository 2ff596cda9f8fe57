"""ui_coil_latest (schema/071) against real PostgreSQL: after schedules arrive in any order,
in one statement or several, are updated or deleted, the history search lists exactly the
coils (each with its newest schedule row) that the direct definition gives."""

from __future__ import annotations

import datetime
import itertools
import random
import zoneinfo

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.ui_queries import history
from tests.support.database import DatabaseTestCase

#: The present of these tests (a fixed instant, not the wall clock): minutes before a plant
#: day (and a year) ends.
NOW = datetime.datetime(2026, 12, 31, 23, 55, tzinfo=zoneinfo.ZoneInfo("Asia/Seoul"))

# The definition: a coil's newest row is the one with the latest received_at, then highest id.
REFERENCE_LATEST = """
    SELECT s.coil_number, s.id, s.customer_name FROM tc_4000_schedule s
    WHERE s.id = (SELECT n.id FROM tc_4000_schedule n WHERE n.coil_number = s.coil_number
                  ORDER BY n.received_at DESC, n.id DESC LIMIT 1)
    ORDER BY 1"""


class CoilLatestTests(DatabaseTestCase, TestCase):
    def setUp(self):
        self.rng = random.Random(71)
        self.sequence = itertools.count(1)
        self.now = NOW
        return self.start_database()

    def schedules(self, rows: list[tuple]) -> None:
        """(coil, customer, received_at) rows in ONE statement."""
        with self.connection.cursor() as cursor:
            values = ",".join(cursor.mogrify("('CCL1', %s, %s, %s, %s, %s, '\\x00')",
                                             (next(self.sequence), at, at, coil, customer)).decode()
                              for coil, customer, at in rows)
            cursor.execute("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,"
                           f" customer_name, raw) VALUES {values}")

    def assertLatest(self):
        latest = self.sql("SELECT coil_number, schedule_id, customer_name FROM ui_coil_latest ORDER BY 1")
        self.assertEqual(latest, self.sql(REFERENCE_LATEST))
        self.assertGreater(len(latest), 0)

    @defer.inlineCallbacks
    def assertSearch(self, **args):
        query = history.Search.from_args(args, self.now.date())  # the plant day of the fixed present
        found = yield history.search(self.db, query)
        coils = {r["coil_number"]: r for r in found["rows"]}
        reference = {c: (i, k) for c, i, k in self.sql(REFERENCE_LATEST)}
        for coil, row in coils.items():
            self.assertEqual((row["id"], row["customer_name"]), reference[coil], coil)
        return found

    @defer.inlineCallbacks
    def test_reschedules_in_any_order(self):
        """Schedules in any order, in one statement or many, edited or deleted: ui_coil_latest names the newest."""
        coils = [f"C{n:04d}" for n in range(60)]
        rows = []
        for coil in coils:
            for _ in range(self.rng.randint(1, 4)):
                rows.append((coil, self.rng.choice(["현대자동차", "포스코", None]),
                             self.now - datetime.timedelta(minutes=self.rng.randint(0, 20_000))))
        self.rng.shuffle(rows)
        self.schedules(rows[:40])  # several rows of one coil in one statement ...
        for row in rows[40:]:      # ... and one at a time, older ones after newer ones
            self.schedules([row])
        # two rows of one coil with the SAME received_at: the higher id wins
        self.schedules([("C0001", "동률 A", self.now), ("C0001", "동률 B", self.now)])
        self.assertLatest()
        self.assertEqual(self.sql("SELECT customer_name FROM ui_coil_latest WHERE coil_number = 'C0001'"),
                         [("동률 B",)])
        found = yield self.assertSearch(**{"from": str((self.now - datetime.timedelta(days=30)).date()),
                                           "size": "200"})
        self.assertEqual(found["total"], len(coils))
        self.assertEqual(len(found["rows"]), len(coils))
        for sort in ("received_at", "customer_name", "coil_number"):
            found = yield self.assertSearch(sort=sort, order="asc", size="25", page="2",
                                            **{"from": str((self.now - datetime.timedelta(days=30)).date())})
            self.assertEqual(len(found["rows"]), 25)

        # an administrator deletes the newest row of a coil, or edits one: the older row is back
        self.sql("DELETE FROM tc_4000_schedule WHERE id = (SELECT schedule_id FROM ui_coil_latest"
                 " WHERE coil_number = 'C0001')")
        self.sql("UPDATE tc_4000_schedule SET received_at = received_at - interval '30 days'"
                 " WHERE coil_number = 'C0002'")
        self.assertLatest()
        self.sql("DELETE FROM tc_4000_schedule WHERE coil_number = 'C0003'")
        self.assertEqual(self.sql("SELECT count(*) FROM ui_coil_latest WHERE coil_number = 'C0003'"), [(0,)])
        self.assertLatest()

        # the partial coil-number and customer searches see the newest row's values only
        found = yield self.assertSearch(coil="c00", customer="포스코", size="200",
                                        **{"from": str((self.now - datetime.timedelta(days=30)).date())})
        expected = [c for c, _, k in self.sql(REFERENCE_LATEST) if k == "포스코" and "C00" in c]
        self.assertEqual(sorted(r["coil_number"] for r in found["rows"]), sorted(expected))
        self.assertGreater(len(expected), 0)
