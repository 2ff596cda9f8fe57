"""Coil tracking against real PostgreSQL: a period recomputed from the stored telegrams, the
results in the tracking tables, and a rebuild after a late telegram moving exactly what it should."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.tracking_store import TrackingReads, TrackingRecords
from ccl.application.tracking import recompute
from tests.support.database import DatabaseTestCase
from tests.support.tracking import SETTINGS, Line, true_metre

T0 = 1_780_000_000.0


class Recompute(DatabaseTestCase, TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.start_database()
        self.store = TrackingRecords(self.db, ["top", "bottom"])
        self.line = Line(self.connection, T0)
        self.line.speeds(0, 900)
        self.line.schedule(0, "A", 600)
        self.line.weld(30, "A")
        # defects every 20 s from 100 s to 800 s, all reported by the box as coil A
        self.defects = {self.line.defect(at, "A"): at for at in range(100, 801, 20)}

    def placed(self):
        return {row[0]: row[1:] for row in self.sql(
            "SELECT defect_id, tracked_coil, metre, uncertainty_m, coil_disagrees, status FROM tracking_defects")}

    @defer.inlineCallbacks
    def test_every_defect_placed_on_its_coil_and_metre(self):
        done = yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        self.assertEqual(done.report["new"], len(self.defects))
        placed = self.placed()
        for defect_id, at in self.defects.items():
            coil, metre, uncertainty, disagrees, status = placed[defect_id]
            self.assertEqual((status, coil, disagrees), ("placed", "A", False))
            self.assertLessEqual(abs(metre - true_metre(at, 0, 30)), uncertainty)
        [coil] = self.sql("SELECT tracked_coil, completeness, schedule_present, wpd_seen, coverage::text"
                          " FROM tracking_coils")
        self.assertEqual(coil, ("A", "running", True, False, '{"top": null, "bottom": null}'))
        again = yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        self.assertEqual((again.report["written"], again.report["unchanged"]), (0, len(self.defects)))

    @defer.inlineCallbacks
    def test_rebuild_after_a_late_weld_moves_exactly_the_defects_behind_it(self):
        yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        before = self.placed()
        # B's weld passed at 400 s; its telegram arrives at 850 s (sent at 400 s).
        self.line.schedule(350, "B", 500)
        self.line.weld(850, "B", sent=400)
        done = yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        after = self.placed()
        # B's head reaches the top camera at 430 s: defects from 440 s on are on B now.
        on_b = {d for d, at in self.defects.items() if at >= 440}
        self.assertEqual(done.report["coil"], len(on_b))
        self.assertEqual(done.report["new"] + done.report["metre"], 0)
        self.assertEqual({d for d in after if after[d][0] == "B"}, on_b)
        for defect_id, at in self.defects.items():
            if defect_id in on_b:
                self.assertLessEqual(abs(after[defect_id][1] - true_metre(at, 0, 400)), after[defect_id][2])
                self.assertTrue(after[defect_id][3])  # the box said A
            else:
                self.assertEqual(after[defect_id], before[defect_id])
        example = done.report["examples"][0]
        self.assertEqual((example["from"]["tracked_coil"], example["to"]["tracked_coil"]), ("A", "B"))
        rows = self.sql("SELECT tracked_coil, wpd_seen, round(length_m::numeric, 3) FROM tracking_coils ORDER BY 1")
        self.assertEqual(rows[0][:2], ("A", True))
        self.assertAlmostEqual(float(rows[0][2]), 740.0)  # (400 - 30) s at 2 m/s

    @defer.inlineCallbacks
    def test_reads_for_the_ui(self):
        self.line.telegram("tc_4003_speed", 901, line_speed=0)
        self.line.speeds(903, 960, mpm=0)
        self.line.speeds(963, 990)
        yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        reads = TrackingReads(self.db)
        coil = yield reads.coil("A")
        self.assertEqual((coil["tracked_coil"], coil["exit_coils"]), ("A", []))
        on_map = yield reads.coil_map("A")
        self.assertEqual(len(on_map), len(self.defects))
        self.assertEqual([m["defect_id"] for m in on_map], sorted(self.defects))  # by metre = by time here
        stop, gap = yield reads.delays(T0, T0 + 1000)
        self.assertEqual((stop["kind"], stop["duration_s"], stop["tracked_coil"]), ("stop", 59.0, "A"))
        # no speed after 990 s, and it is 1000 s: a gap still open
        self.assertEqual((gap["kind"], gap["ended_at"], gap["duration_s"]), ("speed_gap", None, 10.0))
