"""The statistics' daily roll-up (schema/070, ui_queries/rollup.py) against real PostgreSQL:
whatever has been summed or not, and whatever changed since (a late defect, a reclassifying
review, a deleted defect, a new schedule changing a coil's customer), ``stats.statistics``
answers exactly what the direct queries over defect_detections answer."""

from __future__ import annotations

import datetime
import random
import zoneinfo

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.ui_queries import rollup, stats
from tests.support.database import DatabaseTestCase

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
TYPES = ["scratch", "dent", "stain", "pinhole", "edge_crack"]
SEVERITIES = ["low", "medium", "high", "critical"]

# The statistics as they were computed before the roll-up: straight from the defects.
REFERENCE_CELLS = """
    SELECT ((d.detection_time AT TIME ZONE 'Asia/Seoul')::date - date '1970-01-01') AS day, d.defect_type,
           d.severity, least(width_bucket(d.confidence_score, 0, 1, 20), 20) AS bin, count(*) AS n
    FROM defect_detections d
    WHERE d.detection_time >= (%(from)s::date::timestamp AT TIME ZONE 'Asia/Seoul')
      AND d.detection_time < ((%(to)s::date + 1)::timestamp AT TIME ZONE 'Asia/Seoul')
    GROUP BY 1, 2, 3, 4"""
REFERENCE_CUSTOMERS = """
    SELECT coalesce(s.customer_name, '') AS customer_name, sum(c.n)::bigint AS n, count(*) AS coils
    FROM (SELECT d.coil_number, count(*) AS n FROM defect_detections d
          WHERE d.detection_time >= (%(from)s::date::timestamp AT TIME ZONE 'Asia/Seoul')
            AND d.detection_time < ((%(to)s::date + 1)::timestamp AT TIME ZONE 'Asia/Seoul')
          GROUP BY d.coil_number) c
    LEFT JOIN LATERAL (SELECT customer_name FROM tc_4000_schedule s WHERE s.coil_number = c.coil_number
                       ORDER BY s.received_at DESC LIMIT 1) s ON true
    GROUP BY 1 ORDER BY n DESC, customer_name LIMIT 30"""


#: The present of these tests (time is an input, not the wall clock): 20 minutes into the
#: first of a month in plant time, so "today" is short, yesterday (the month's last day) is
#: still within the roll-up's GRACE, and the ranges cross a month's end.
NOW = datetime.datetime(2026, 3, 1, 0, 20, tzinfo=SEOUL)
TODAY = NOW.date()


class RollupTests(DatabaseTestCase, TestCase):
    def setUp(self):
        self.rng = random.Random(70)
        return self.start_database()

    def schedule(self, coil: str, customer: str | None, at: datetime.datetime) -> None:
        self.sql("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,"
                 " customer_name, raw) VALUES ('CCL1', 1, %s, %s, %s, %s, '\\x00')", (at, at, coil, customer))

    def defects(self, rows: list[tuple]) -> None:
        """(coil, type, confidence, severity, detection_time) rows, in one multi-row INSERT
        (one statement, as ingestion writes them)."""
        with self.connection.cursor() as cursor:
            values = ",".join(cursor.mogrify("(%s,%s,%s,%s,%s)", row).decode() for row in rows)
            cursor.execute("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                           f" detection_time) VALUES {values}")

    def random_defect(self, coil: str, when: datetime.datetime) -> tuple:
        # confidence on bin edges too (0, 0.05, 1) so that the histogram's edge cases are compared
        confidence = self.rng.choice([0.0, 0.05, 1.0, round(self.rng.random(), 3), self.rng.random()])
        return (coil, self.rng.choice(TYPES), confidence, self.rng.choice(SEVERITIES), when)

    def seed(self, days: int = 40) -> datetime.datetime:
        now = NOW
        customers = ["현대자동차", "포스코", "LG전자", None]
        rows = []
        for n in range(days * 3):
            coil = f"C{n:05d}"
            began = now - datetime.timedelta(hours=8 * (days * 3 - n))
            self.schedule(coil, self.rng.choice(customers), began - datetime.timedelta(minutes=30))
            for _ in range(self.rng.randint(0, 12)):
                # some coils run over midnight: their defects fall on two days
                rows.append(self.random_defect(coil, began + datetime.timedelta(minutes=self.rng.randint(0, 600))))
        rows = [r for r in rows if r[4] <= now]
        rows.append(self.random_defect("C-ORPHAN", now - datetime.timedelta(days=3)))  # no schedule at all
        rows.append(self.random_defect("C-ORPHAN", now - datetime.timedelta(minutes=5)))  # today has one at least
        self.defects(rows)
        return now

    @defer.inlineCallbacks
    def assertSame(self, date_from: datetime.date, date_to: datetime.date):
        params = {"from": date_from, "to": date_to}
        expected = stats.fold(self.sql(REFERENCE_CELLS, params))
        customers = self.sql(REFERENCE_CUSTOMERS, params)
        expected["by_customer"] = [{"customer_name": c, "n": n, "coils": k} for c, n, k in customers]
        found = yield stats.statistics(self.db, date_from, date_to)
        for key in ("total", "pareto", "daily", "confidence", "by_customer"):
            self.assertEqual(found[key], expected[key], f"{key} differs for {date_from} .. {date_to}")
        self.assertGreater(found["total"], 0)

    @defer.inlineCallbacks
    def assertAllRanges(self):
        end = TODAY
        for days in (1, 2, 7, 30, 45):
            yield self.assertSame(end - datetime.timedelta(days=days - 1), end)
        yield self.assertSame(end - datetime.timedelta(days=20), end - datetime.timedelta(days=5))

    def summed_days(self) -> set[datetime.date]:
        return {row[0] for row in self.sql("SELECT day FROM ui_stats_days")}

    @defer.inlineCallbacks
    def test_same_answers_before_and_after_summing(self):
        """Statistics answer the same before and after the roll-up sums the closed days; today is never summed."""
        self.seed()
        yield self.assertAllRanges()  # nothing summed yet: all read live
        summed = yield rollup.refresh_all(self.db, NOW, max_days=7)
        self.assertGreaterEqual(len(summed), 38)
        self.assertTrue(all(day < TODAY for day in self.summed_days()), "today is never summed")
        self.assertEqual(self.sql("SELECT count(*) FROM ui_stats_dirty"), [(0,)])
        self.assertGreater(self.sql("SELECT count(*) FROM ui_stats_cells")[0][0], 100)
        yield self.assertAllRanges()
        again = yield rollup.refresh(self.db, NOW)
        self.assertEqual(again, [], "nothing left to sum")

    @defer.inlineCallbacks
    def test_late_defect_reclassification_deletion_and_new_customer(self):
        """Late defects, reclassifications, deletions and a new customer mark summed days, read live until re-summed."""
        now = self.seed()
        yield rollup.refresh_all(self.db, NOW)
        ten_days_ago = now - datetime.timedelta(days=10)
        late_day = ten_days_ago.astimezone(SEOUL).date()
        self.assertIn(late_day, self.summed_days())

        # a defect arriving late for a day already summed
        self.defects([("C00050", "pinhole", 0.97, "critical", ten_days_ago)])
        self.assertIn((late_day,), self.sql("SELECT day FROM ui_stats_dirty"))
        yield self.assertAllRanges()  # the marked day is read live ...
        yield rollup.refresh(self.db, NOW)
        self.assertEqual(self.sql("SELECT count(*) FROM ui_stats_dirty"), [(0,)])
        yield self.assertAllRanges()  # ... and summed again

        # a review reclassifies a defect of a summed day (what pages/reviews.py writes)
        defect_id, defect_type, found_at = self.sql(
            "SELECT id, defect_type, detection_time FROM defect_detections"
            " WHERE detection_time < %s AND defect_type <> 'dent' ORDER BY id LIMIT 1",
            (NOW - datetime.timedelta(days=5),))[0]
        self.sql("UPDATE defect_detections SET defect_type = 'dent', original_defect_type = %s,"
                 " review_status = 'reclassified' WHERE id = %s", (defect_type, defect_id))
        yield self.assertAllRanges()
        yield rollup.refresh(self.db, NOW)
        yield self.assertAllRanges()

        # a defect deleted (e.g. a retention job)
        self.sql("DELETE FROM defect_detections WHERE id = (SELECT min(id) FROM defect_detections"
                 " WHERE detection_time < %s)", (NOW - datetime.timedelta(days=3),))
        yield self.assertAllRanges()
        yield rollup.refresh(self.db, NOW)
        yield self.assertAllRanges()

        # a coil rescheduled for another customer: its defects on summed days move with it
        coil = self.sql("SELECT coil_number FROM defect_detections WHERE detection_time < %s"
                        " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", (NOW - datetime.timedelta(days=4),))[0][0]
        self.schedule(coil, "새 고객", now)
        self.assertGreater(self.sql("SELECT count(*) FROM ui_stats_dirty")[0][0], 0)
        yield self.assertAllRanges()
        yield rollup.refresh(self.db, NOW)
        yield self.assertAllRanges()
        self.assertIn("새 고객", [c["customer_name"] for c in (yield stats.statistics(
            self.db, TODAY - datetime.timedelta(days=44), TODAY))["by_customer"]])

    @defer.inlineCallbacks
    def test_todays_defects_write_no_marks(self):
        """Today's defects and their reviews leave no marks to re-sum, and the answers stay exact."""
        self.seed(days=5)
        yield rollup.refresh_all(self.db, NOW)
        # "Today" for the marking triggers is the writing transaction's now(): live defects
        # stamped with it, and reviewed in the same transaction (one query string is one
        # transaction), are today's at any hour the test runs, even across a midnight.
        self.sql("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time)"
                 " SELECT 'C-LIVE', (%s::text[])[1 + g %% 5], g / 50.0, (%s::text[])[1 + g %% 4], now()"
                 " FROM generate_series(1, 50) g;"
                 " UPDATE defect_detections SET review_status = 'confirmed' WHERE coil_number = 'C-LIVE'",
                 (TYPES, SEVERITIES))
        # ingestion of live defects (and reviews of today's) leave nothing to re-sum
        self.assertEqual(self.sql("SELECT count(*) FROM ui_stats_dirty"), [(0,)])
        yield self.assertAllRanges()
        (live_day,) = self.sql("SELECT (now() AT TIME ZONE 'Asia/Seoul')::date")[0]
        yield self.assertSame(TODAY, live_day)  # the live day is read from the defects themselves
