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
        """A recompute places every defect on its coil and metre."""
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
        """A weld telegram arriving late moves exactly the defects behind it."""
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
        self.assertEqual(done.report["disagreements"], len(on_b))  # counted, the box's number kept
        self.assertEqual({d for d in after if after[d][0] == "B"}, on_b)
        for defect_id, at in self.defects.items():
            if defect_id in on_b:
                self.assertLessEqual(abs(after[defect_id][1] - true_metre(at, 0, 400)), after[defect_id][2])
                self.assertTrue(after[defect_id][3])  # the box said A
            else:
                self.assertEqual(after[defect_id], before[defect_id])
        # A weld stored by mistake, and deleted again: its coil goes with the next rebuild.
        [(mistake,)] = self.sql("SELECT %s", (self.line.weld(600, "X"),))
        yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        self.assertIn(("X",), self.sql("SELECT tracked_coil FROM tracking_coils"))
        self.sql("DELETE FROM tc_4002_wpd WHERE id = %s", (mistake,))
        yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        self.assertEqual(self.sql("SELECT tracked_coil FROM tracking_coils ORDER BY 1"), [("A",), ("B",)])
        example = done.report["examples"][0]
        self.assertEqual((example["from"]["tracked_coil"], example["to"]["tracked_coil"]), ("A", "B"))
        rows = self.sql("SELECT tracked_coil, wpd_seen, round(length_m::numeric, 3) FROM tracking_coils ORDER BY 1")
        self.assertEqual(rows[0][:2], ("A", True))
        self.assertAlmostEqual(float(rows[0][2]), 740.0)  # (400 - 30) s at 2 m/s

    @defer.inlineCallbacks
    def test_coverage_from_the_stored_heartbeats(self):
        """A coil's camera coverage comes from the stored heartbeats; a camera without any is unknown."""
        # A passes the top camera from 60 s to 430 s (B's weld at 400 s); the top box inspected
        # nothing from 200 s to 260 s; the bottom box sent no heartbeat at all.
        self.line.weld(400, "B")
        self.line.telegram("tc_4001_cut", 490, coil_number="A", cut_mode=1, winding_length=740)
        for start, end, inspected in ((0, 200, 100), (200, 260, 0), (260, 600, 100)):
            self.sql("INSERT INTO inspection_heartbeats (camera_id, box_id, period_start, period_end,"
                     " frames_inspected, frames_expected) VALUES ('top', 'orin-1', to_timestamp(%s),"
                     " to_timestamp(%s), %s, 100)", (T0 + start, T0 + end, inspected))
        yield recompute(self.store, SETTINGS, T0, T0 + 1000, T0 + 1000)
        [(coverage, completeness)] = self.sql("SELECT coverage, completeness FROM tracking_coils"
                                              " WHERE tracked_coil = 'A'")
        self.assertAlmostEqual(coverage["top"], 1 - 120 / 740)  # 60 s at 2 m/s missed
        self.assertIsNone(coverage["bottom"])
        self.assertEqual(completeness, "partial")

    @defer.inlineCallbacks
    def test_a_stop_begun_before_the_period_is_kept_current(self):
        """A stop begun before the recomputed period stays open and its duration is kept current."""
        self.line.speeds(903, 1200, mpm=0)  # stopped from 903 s on
        yield recompute(self.store, SETTINGS, T0 + 950, None, T0 + 1000)
        self.assertEqual(self.sql("SELECT kind, extract(epoch FROM started_at) - %s, ended_at, duration_s"
                                  " FROM tracking_delays WHERE kind = 'stop'", (T0,)), [("stop", 903, None, 97.0)])
        yield recompute(self.store, SETTINGS, T0 + 1100, None, T0 + 1201)
        self.assertEqual(self.sql("SELECT duration_s FROM tracking_delays WHERE kind = 'stop'"), [(298.0,)])

    @defer.inlineCallbacks
    def test_reads_for_the_ui(self):
        """The UI's reads give a coil's map in metre order and the line's stops and open speed gaps."""
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


class RebuildCommand(DatabaseTestCase, TestCase):
    """``ccl tracking rebuild`` as a real subprocess: a coil cut at the shear into two exit coils
    (cropped 5 m at head and tail), its defects and an image re-mapped onto them."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.start_database()
        line = self.line = Line(self.connection, T0)
        line.speeds(0, 900)
        line.schedule(0, "A", 600)
        line.weld(30, "A")
        line.weld(330, "B")
        # cuts at odometer 65 (crop), 365 (A, 300 m), 655 (A, 290 m) and 665 (crop around the weld at 660);
        # the shear is 180 m after the detector: a cut at x happens at (x + 180) / 2 s.
        line.telegram("tc_4001_cut", 122.5, coil_number="A", cut_mode=2, winding_length=None)
        line.telegram("tc_4001_cut", 272.5, coil_number="A", cut_mode=1, winding_length=300)
        line.telegram("tc_4001_cut", 417.5, coil_number="A", cut_mode=1, winding_length=290)
        line.telegram("tc_4001_cut", 422.5, coil_number="B", cut_mode=2, winding_length=None)
        self.first = line.defect(130, "A")  # odometer 200: A metre 140, exit coil 1 metre 135
        self.second = line.defect(230, "A", camera="bottom")  # odometer 398: exit coil 2 metre 33
        [(self.image,)] = self.sql(
            "INSERT INTO images (coil_number, kind, filename, path, bytes, width, height, format, sha256, captured_at,"
            " received_at, camera_id) VALUES ('A', 'original', 'a.jpg', '/x/a.jpg', 1, 1, 1, 'JPEG', repeat('0', 64),"
            " to_timestamp(%s), to_timestamp(%s), 'top') RETURNING id", (T0 + 130, T0 + 131))

    def rebuild(self):
        from datetime import datetime, timezone

        from tests.support.tracking import ENV
        from tests.test_cli_create_user import run_cli

        moment = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
        return run_cli(["tracking", "rebuild", "--from", moment(T0), "--to", moment(T0 + 1000), "--dsn", self.dsn],
                       env_extra={**ENV, "CCL_TRACKING_SCRAP_CUT_MODES": "2"})

    def test_defects_remapped_onto_the_exit_coils(self):
        """tracking rebuild places defects and images on coils and exit coils, audited; run again it changes nothing."""
        result = self.rebuild()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("new 3, moved to another coil 0", result.stdout)
        rows = {r[0]: r[1:] for r in self.sql(
            "SELECT defect_id, tracked_coil, round(metre::numeric, 3), exit_coil, exit_piece,"
            " round(exit_metre::numeric, 3) FROM tracking_defects")}
        self.assertEqual(rows[self.first], ("A", 140, "A", 1, 135))
        self.assertEqual(rows[self.second], ("A", 338, "A", 2, 33))
        [image] = self.sql("SELECT tracked_coil, exit_coil, exit_piece, round(exit_metre::numeric, 3), time_source"
                           " FROM tracking_images WHERE image_id = %s", (self.image,))
        self.assertEqual(image, ("A", "A", 1, 135, "box"))
        exits = self.sql("SELECT piece, coil_number, round(start_m::numeric, 3), round(end_m::numeric, 3),"
                         " winding_length, scrap, length_disagrees FROM tracking_exit_coils"
                         " WHERE tracked_coil = 'A' ORDER BY piece")
        self.assertEqual(exits, [(1, "A", 5, 305, 300, False, False), (2, "A", 305, 595, 290, False, False)])
        [coil] = self.sql("SELECT round(head_crop_m::numeric, 3), round(tail_crop_m::numeric, 3), cut_seen,"
                          " length_disagrees FROM tracking_coils WHERE tracked_coil = 'A'")
        self.assertEqual(coil, (5, 5, True, False))
        [(report,)] = self.sql("SELECT report FROM tracking_runs")
        self.assertEqual((report["new"], report["placements"]), (3, 3))
        self.assertEqual(self.sql("SELECT action, result FROM audit_logs"), [("tracking.rebuild", "ok")])
        again = self.rebuild()
        self.assertIn("unchanged 3; written 0", again.stdout)

    def test_bad_period_refused_with_a_message(self):
        """ccl tracking rebuild refuses a bad period with a message naming --from."""
        from tests.test_cli_create_user import run_cli

        result = run_cli(["tracking", "rebuild", "--from", "yesterday", "--to", "2026-01-01", "--dsn", self.dsn])
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--from", result.stderr)
        result = run_cli(["tracking", "rebuild", "--from", "2026-01-02", "--to", "2026-01-01", "--dsn", self.dsn])
        self.assertEqual(result.returncode, 2)
        self.assertIn("later than --from", result.stderr)

    def test_unreachable_database_is_a_message(self):
        """tracking rebuild against an unreachable database exits 1 with a message."""
        from ccl.adapters.storage.localdb import free_port
        from tests.test_cli_create_user import run_cli

        dsn = f"host=127.0.0.1 port={free_port()} dbname=none user=none connect_timeout=1"
        result = run_cli(["tracking", "rebuild", "--from", "2026-01-01", "--to", "2026-01-02", "--dsn", dsn,
                          "--wait", "1"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("not reachable", result.stderr)
