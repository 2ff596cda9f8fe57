"""ccl simulate line: one run of the line played to the real ccl-mes, ccl-images and ccl-defects.

The services run in this process on loopback ports with a real PostgreSQL; the simulator is a
real child process. What the servers stored is compared with the simulator's truth file.
"""

import json
import os
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from twisted.internet import defer, reactor, utils
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from ccl.config import load_config
from ccl.domain.line_simulation import LineGeometry, RunPlan, plan_run
from tests.support import ingest, mes
from tests.support.database import fresh_database, query
from ccl.services.tracking import live_tracking
from tests.test_ingest_auth import ccl

ROOT = Path(__file__).resolve().parent.parent
START = "2026-03-01T10:00:00+09:00"
# A short, fast run: 2 coils of about 150 m at 300 m/min, one stop, the second coil cut in two.
RUN = ("--start", START, "--coils", "2", "--coil-length", "150", "--speed", "300", "--ramp", "60",
       "--stop-seconds", "5", "--defects-per-coil", "5", "--wpd-to-camera", "20", "--camera-to-shear", "25",
       "--camera-offset", "bottom=1.5", "--heartbeat-every", "5")


def run_cli(*args, env: dict | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
    environ.update(env or {}, PYTHONPATH=str(ROOT))
    return utils.getProcessOutputAndValue(sys.executable, ("-m", "ccl", "simulate", "line", *args), env=environ)


def truth(path: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            found.setdefault(item["kind"], []).append(item)
    return found


class SimulatedLineTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def start_plant(self, allow: str = "10.99.0.0/16", env: dict | None = None):
        """ccl-mes, ccl-images and ccl-defects on one database; 127.0.0.1 is not on the allow-list,
        so the boxes get in only with their token."""
        self.dsn = fresh_database(self)
        self.mes = yield mes.start_service(self, self.dsn)
        self.images = yield ingest.start_service(self, "images", allow=allow, dsn=self.dsn, env=env)
        self.defects = yield ingest.start_service(self, "defects", allow=allow, dsn=self.dsn, env=env)
        code, out, _ = ccl("ingest-token", "--dsn", self.dsn, "create", "jetson-sim")
        self.assertEqual(code, 0)
        self.token_file = self.mktemp()
        Path(self.token_file).write_text(out.strip().splitlines()[-1] + "\n")
        self.targets = ("--mes", f"127.0.0.1:{mes.port_of(self.mes.settings.listen)}", "--images", self.images.url,
                        "--defects", self.defects.url, "--token-file", self.token_file)

    @defer.inlineCallbacks
    def test_a_run_is_stored_as_its_truth_says(self):
        """A simulated line run is all ACKed and taken, and stored as its truth file says."""
        yield self.start_plant()
        truth_file = self.mktemp()
        out, err, code = yield run_cli(*RUN, *self.targets, "--speedup", "40", "--truth", truth_file,
                                       "--clock-offset", "top=2.5", "--box-coil-lag", "3")
        text = out.decode() + err.decode()
        self.assertEqual(code, 0, text)
        self.assertIn("result:  all telegrams ACKed", text)
        self.assertIn("result:  all uploads taken", text)
        told = truth(truth_file)
        coils, defects = told["coil"], told["defect"]
        self.assertEqual(len(coils), 2)
        self.assertEqual(len(told["stop"]), 1)
        self.assertEqual(len(defects), 10)

        # The MES side: a schedule and a WPD per coil (and one for the coil that carries the last
        # tail to the shear), one cut per piece, the speed every 3 s.
        pieces = sum(len(c["pieces_m"]) for c in coils)
        self.assertEqual(pieces, 3)  # the second coil was cut in two
        sent = Counter()
        for line in text.splitlines():
            if line.startswith("ACKed:"):
                for part in line.removeprefix("ACKed:").split(","):
                    tc, count = part.strip().removeprefix("TC ").split(": ")
                    sent[tc] = int(count)
        yield mes.wait_for(lambda: self.mes.writer.backlog == 0 and self.mes.writer.applied_upto == sum(sent.values()))
        stored = dict(query(self.dsn, "SELECT '4000', count(*) FROM tc_4000_schedule UNION ALL"
                                      " SELECT '4001', count(*) FROM tc_4001_cut UNION ALL"
                                      " SELECT '4002', count(*) FROM tc_4002_wpd UNION ALL"
                                      " SELECT '4003', count(*) FROM tc_4003_speed"))
        self.assertEqual(stored, dict(sent))
        self.assertEqual((stored["4000"], stored["4001"], stored["4002"]), (3, 3, 3))
        wpd = [row[0] for row in query(self.dsn, "SELECT coil_number FROM tc_4002_wpd ORDER BY id")]
        self.assertEqual(wpd[:2], [c["coil"] for c in coils])
        cuts = query(self.dsn, "SELECT coil_number, cut_mode, winding_length FROM tc_4001_cut ORDER BY id")
        self.assertEqual([(c, w) for c, _, w in cuts],
                         [(c["coil"], round(p)) for c in coils for p in c["pieces_m"]])
        self.assertEqual([m for _, m, _ in cuts], [1, 2, 2])
        speeds = [row[0] for row in query(self.dsn, "SELECT line_speed FROM tc_4003_speed ORDER BY id")]
        self.assertIn(0, speeds)  # the stop
        self.assertTrue(max(speeds) >= 270, speeds)
        # The telegrams carry the run's clock, not the wall clock.
        first = query(self.dsn, "SELECT min(sent_at) FROM tc_4003_speed")[0][0]
        self.assertEqual(first, datetime.fromisoformat(START))

        # The boxes' side: every defect of the truth stored once, as the box saw it (its coil,
        # its clock), with its image pair.
        rows = query(self.dsn, "SELECT d.event_id::text, d.coil_number, d.camera_id, d.detection_time, d.defect_type,"
                               " o.camera_id, o.captured_at, o.coil_number, l.kind"
                               " FROM defect_detections d JOIN images o ON o.id = d.original_image_id"
                               " JOIN images l ON l.id = d.labeled_image_id ORDER BY d.event_id")
        expected = sorted((d["event_id"], d["box_coil"], d["camera"], datetime.fromisoformat(d["captured_at"]),
                           d["defect_type"], d["camera"], datetime.fromisoformat(d["captured_at"]), d["box_coil"],
                           "labeled") for d in defects)
        self.assertEqual(rows, expected)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM images")[0][0], 2 * len(defects))
        # The faults asked for: the top box's clock is 2.5 s ahead, and defects in the first 3 m
        # of the second coil came with the first coil's number.
        for d in defects:
            lag = datetime.fromisoformat(d["captured_at"]) - datetime.fromisoformat(d["passed_at"])
            self.assertEqual(lag, timedelta(seconds=2.5 if d["camera"] == "top" else 0))
        wrong = [d for d in defects if d["box_coil"] != d["coil"]]
        self.assertTrue(wrong)
        self.assertEqual({(d["coil"], d["box_coil"]) for d in wrong}, {(coils[1]["coil"], coils[0]["coil"])})
        self.assertTrue(all(d["metre"] < 3 for d in wrong))
        # Heartbeats: each camera's periods back to back, every frame inspected, the top box's
        # periods on its own clock.
        self.assertNotIn("heartbeats skipped", text)
        beats = query(self.dsn, "SELECT camera_id, count(*), sum(frames_inspected) = sum(frames_expected),"
                                " min(period_start) FROM inspection_heartbeats GROUP BY camera_id ORDER BY camera_id")
        self.assertEqual([b[0] for b in beats], ["bottom", "top"])
        self.assertTrue(all(b[1] > 3 and b[2] for b in beats), beats)
        start = datetime.fromisoformat(START)
        self.assertEqual([b[3] for b in beats], [start, start + timedelta(seconds=2.5)])

    @defer.inlineCallbacks
    def test_tracking_places_every_defect_within_its_uncertainty_of_the_truth(self):
        """The whole chain on one machine: the run played in real time (the server dates
        telegrams by their receipt) to ccl-mes, ccl-images and ccl-defects with its live
        tracker; every defect lands on its true coil within its stated uncertainty of its true
        metre, on the right piece of the coil cut in two, and exactly the defects the boxes
        sent with the wrong coil number are flagged. Server and simulator read the same
        ``[tracking]`` settings (the environment below); the top box's clock runs 2.5 s ahead,
        and the server is told so."""
        line = {"CCL_TRACKING_WPD_TO_CAMERA_M": "10", "CCL_TRACKING_CAMERA_TO_SHEAR_M": "15",
                "CCL_TRACKING_CAMERA_OFFSETS_M": "top:0, bottom:1.5",
                "CCL_TRACKING_CAMERA_CLOCK_OFFSETS_S": "top:2.5, bottom:0"}
        yield self.start_plant(env=line)
        config = load_config({"CCL_DATABASE_DSN": self.dsn, **line})
        tracking = live_tracking(config, self.defects.db, reactor)
        tracking.startService()
        self.addCleanup(tracking.tracker.idle)
        self.addCleanup(tracking.stopService)
        yield tracking.tracker.idle()
        truth_file = self.mktemp()
        # About 25 s of line at 600 m/min: two coils of about 80 m, one stop, the second cut in two.
        out, err, code = yield run_cli(
            "--coils", "2", "--coil-length", "80", "--speed", "600", "--ramp", "300", "--stop-seconds", "3",
            "--defects-per-coil", "6", "--heartbeat-every", "2", "--batch-every", "2", "--clock-offset", "top=2.5",
            "--box-coil-lag", "3", *self.targets, "--truth", truth_file, env=line)
        text = out.decode() + err.decode()
        self.assertEqual(code, 0, text)
        self.assertIn("cameras 10 m after the WPD (offsets top +0 m, bottom +1.5 m), shear 15 m after them", text)
        told = truth(truth_file)
        defects = {d["event_id"]: d for d in told["defect"]}
        self.assertEqual(len(defects), 12)

        def placements():
            return query(self.dsn, "SELECT d.event_id::text, t.status, t.tracked_coil, t.metre, t.uncertainty_m,"
                                   " t.exit_coil, t.exit_piece, t.coil_disagrees, t.box_coil, t.provisional"
                                   " FROM tracking_defects t JOIN defect_detections d ON d.id = t.defect_id")

        yield ingest.wait_for(lambda: len(placements()) == 12 and not any(p[9] for p in placements()),
                              "every defect placed for good", timeout=30)
        yield tracking.tracker.sweep()
        pieces = {c["coil"]: c["pieces_m"] for c in told["coil"]}
        heads, along = {}, 0.0  # each coil's head along the strip, from the first weld
        for c in told["coil"]:
            heads[c["coil"]] = along
            along += c["length_m"]
        on_true_coil = 0
        for event_id, status, coil, metre, uncertainty, exit_coil, piece, disagrees, box_coil, _ in placements():
            true = defects[event_id]
            what = f"defect at {true['metre']} m of {true['coil']} ({true['camera']}): placed {coil} {metre} +- {uncertainty}"
            self.assertEqual(status, "placed", what)
            self.assertIn(coil, heads, what)
            # Along the strip, the placement is within its stated bound of the truth ...
            self.assertLessEqual(abs(heads[coil] + metre - heads[true["coil"]] - true["metre"]), uncertainty, what)
            # ... so it is on the true coil unless the truth lies within that bound of a weld.
            if true["weld_distance_m"] > uncertainty:
                self.assertEqual(coil, true["coil"], what)
                on_true_coil += 1
            self.assertEqual(box_coil, true["box_coil"], what)
            self.assertEqual(disagrees, box_coil not in (coil, exit_coil), what)
            # The piece of a coil cut at the shear, where the cut (dated by its telegram) is clear of it.
            cuts = [sum(pieces[true["coil"]][:i]) for i in range(len(pieces[true["coil"]]) + 1)]
            if exit_coil is not None and all(abs(true["metre"] - cut) > uncertainty + 10.0 for cut in cuts):
                self.assertEqual((exit_coil, piece), (true["coil"], true["piece"]), what)
        self.assertGreaterEqual(on_true_coil, 4)  # the others lie within their bound of a weld
        self.assertTrue(any(d["box_coil"] != d["coil"] for d in defects.values()))
        self.assertEqual(sorted(len(p) for p in pieces.values()), [1, 2])
        exits = query(self.dsn, "SELECT tracked_coil, count(*) FROM tracking_exit_coils GROUP BY 1 ORDER BY 1")
        self.assertEqual(dict(exits), {coil: len(p) for coil, p in pieces.items()})
        # Both coils ran through with every telegram and every frame: complete, both cameras
        # covered (the top box's heartbeats too, once its clock offset is taken off).
        coils = query(self.dsn, "SELECT tracked_coil, completeness, coverage FROM tracking_coils"
                                " WHERE tracked_coil = ANY(%s) ORDER BY 1", (list(pieces),))
        self.assertEqual([(coil, completeness) for coil, completeness, _ in coils],
                         [(coil, "complete") for coil in sorted(pieces)])
        for coil, _, coverage in coils:
            self.assertEqual(set(coverage), {"top", "bottom"})
            self.assertTrue(all(share >= 1 - 1e-6 for share in coverage.values()), (coil, coverage))

    @defer.inlineCallbacks
    def test_without_the_token_the_uploads_fail_and_it_says_so(self):
        """Without a valid token the uploads fail, nothing is stored, and the run says so and exits 1."""
        yield self.start_plant()
        os.remove(self.token_file)
        Path(self.token_file).write_text("ccl_not-a-token\n")
        out, err, code = yield run_cli(*RUN, *self.targets, "--speedup", "100", "--coils", "1",
                                       "--defects-per-coil", "1", "--no-heartbeats")
        text = out.decode()
        self.assertEqual(code, 1, text + err.decode())
        self.assertIn("result:  all telegrams ACKed", text)
        self.assertIn("FAILED:  pair 401", text)
        self.assertIn("result:  uploads FAILED", text)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM images")[0][0], 0)

    @defer.inlineCallbacks
    def test_nobody_listening_is_a_clear_error(self):
        """With nobody listening, ccl simulate line exits 2 with a clear message, no traceback."""
        port = free_port()
        out, err, code = yield run_cli(*RUN, "--mes", f"127.0.0.1:{port}", "--images", f"http://127.0.0.1:{port}",
                                       "--defects", f"http://127.0.0.1:{port}")
        self.assertEqual(code, 2)
        self.assertIn("cannot connect to the MES listener", err.decode())
        self.assertNotIn("Traceback", err.decode())

    @defer.inlineCallbacks
    def test_bad_options_are_refused_before_anything_is_sent(self):
        """Bad options (unknown camera, empty gap, start without offset) are refused before anything is sent."""
        for args, message in ((("--clock-offset", "side=1"), "not among the cameras top, bottom"),
                              (("--camera-gap", "top:5:1"), "FROM < TO"),
                              (("--start", "2026-03-01T10:00:00"), "needs its offset")):
            out, err, code = yield run_cli(*RUN, "--plan-only", *args)
            self.assertEqual(code, 2, out + err)
            self.assertIn(message, err.decode())
            self.assertNotIn("Traceback", err.decode())


class LinePlanTests(TestCase):
    """The simulator's own physics, against hand-computed cases."""

    START = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)

    def assert_near(self, value: float, expected: float, tolerance: float) -> None:
        self.assertTrue(abs(value - expected) <= tolerance, f"{value} is not within {tolerance} of {expected}")

    def test_constant_speed_places_everything_by_distance(self):
        """At a constant 120 m/min (2 m/s) and no stop, a defect at metre m of the coil whose
        weld passed the WPD at t0 passes a camera d metres on at t0 + (m + d) / 2."""
        geometry = LineGeometry(20.0, 30.0, {"top": 0.0, "bottom": 2.0})
        plan = RunPlan(start=self.START, geometry=geometry, coils=2, coil_length_m=100.0, speed_mpm=120.0,
                       speed_variation=0.0, stops=0, split_every=0)
        run = plan_run(plan)
        first, second = run.coils
        self.assertEqual(first.head_at_wpd, self.START)
        self.assert_near((second.head_at_wpd - self.START).total_seconds(), first.length_m / 2.0, 1e-5)
        heads = {c.coil_number: (c.head_at_wpd - self.START).total_seconds() for c in run.coils}
        for d in run.defects:
            seconds = (d.passed_at - self.START).total_seconds()
            self.assert_near(seconds, heads[d.coil_number] + (d.metre + geometry.camera_m(d.camera)) / 2.0, 1e-5)
        speeds = {e.payload["values"]["line_speed"] for e in run.events
                  if e.kind == "telegram" and e.payload["tc_code"] == "4003"}
        self.assertEqual(speeds, {120})

    def test_the_truth_follows_the_true_speed_not_the_telegrams(self):
        """Integrating the reported speeds (whole m/min every 3 s) lands near, not exactly on,
        the truth: the difference is what tracking's uncertainty has to cover."""
        plan = RunPlan(start=self.START, coils=1, coil_length_m=200.0, stops=1, stop_s=10.0, split_every=0)
        run = plan_run(plan)
        speeds = [(e.at, e.payload["values"]["line_speed"]) for e in run.events
                  if e.kind == "telegram" and e.payload["tc_code"] == "4003"]
        self.assertEqual(speeds[1][0] - speeds[0][0], 3.0)
        self.assertIn(0, [s for _, s in speeds])
        (stop_from, stop_to), = run.stops
        self.assert_near((stop_to - stop_from).total_seconds(), 10.0, 0.05)
        # Held speed: position(t) = sum of speed * 3 s over the samples before t.
        coil = run.coils[0]
        head = (coil.head_at_wpd - self.START).total_seconds()
        for d in run.defects:
            at = (d.passed_at - self.START).total_seconds()
            travelled = sum(s / 60 * min(3.0, max(0.0, at - t)) for t, s in speeds if t < at)
            travelled -= sum(s / 60 * min(3.0, max(0.0, head - t)) for t, s in speeds if t < head)
            reported_metre = travelled - plan.geometry.camera_m(d.camera)
            self.assert_near(reported_metre, d.metre, 3.0)

    def test_cut_pieces_and_box_faults(self):
        """A coil cut in two has its pieces; box clock offsets and coil lag show in the planned defects."""
        plan = RunPlan(start=self.START, coils=2, split_every=1, clock_offsets_s={"bottom": -1.0},
                       box_coil_lag_m=2.0, defects_per_coil=8)
        run = plan_run(plan)
        for coil in run.coils:
            self.assertEqual(len(coil.pieces_m), 2)
            self.assertAlmostEqual(sum(coil.pieces_m), coil.length_m, places=6)
        cuts = [e.payload["values"] for e in run.events if e.kind == "telegram" and e.payload["tc_code"] == "4001"]
        self.assertEqual([c["cut_mode"] for c in cuts], [2, 2, 2, 2])
        for d in run.defects:
            self.assertEqual(d.captured_at - d.passed_at, timedelta(seconds=-1.0 if d.camera == "bottom" else 0))
            pieces = next(c.pieces_m for c in run.coils if c.coil_number == d.coil_number)
            self.assertAlmostEqual(d.piece_metre, d.metre - (pieces[0] if d.piece == 2 else 0.0), places=9)
            first = d.coil_number == run.coils[0].coil_number
            self.assertEqual(d.box_coil != d.coil_number, not first and d.metre < 2.0)

    def test_a_coil_cut_into_several(self):
        """A coil cut into three: three cuts at the shear, each after the strip of its piece, and
        each defect on the piece that holds its metre."""
        plan = RunPlan(start=self.START, coils=1, split_every=1, split_pieces=3, defects_per_coil=20, stops=0)
        run = plan_run(plan)
        (coil,) = run.coils
        self.assertEqual(len(coil.pieces_m), 3)
        self.assertAlmostEqual(sum(coil.pieces_m), coil.length_m, places=6)
        cuts = [e for e in run.events if e.kind == "telegram" and e.payload["tc_code"] == "4001"]
        self.assertEqual([c.payload["values"]["winding_length"] for c in cuts], [round(p) for p in coil.pieces_m])
        self.assertEqual(sorted(c.at for c in cuts), [c.at for c in cuts])
        for d in run.defects:
            start = sum(coil.pieces_m[:d.piece - 1])
            self.assertTrue(start <= d.metre < start + coil.pieces_m[d.piece - 1])
            self.assertAlmostEqual(d.piece_metre, d.metre - start, places=9)
        self.assertEqual({d.piece for d in run.defects}, {1, 2, 3})

    def test_a_camera_gap_leaves_out_defects_and_frames(self):
        """A camera gap leaves out that camera's defects and frames."""
        plan = RunPlan(start=self.START, coils=1, defects_per_coil=40, camera_gaps=(("top", 0.0, 1e6),))
        run = plan_run(plan)
        self.assertTrue(run.defects)
        self.assertEqual({d.camera for d in run.defects}, {"bottom"})
        beats = [e.payload for e in run.events if e.kind == "heartbeat"]
        self.assertTrue(all(b["frames_inspected"] == 0 for b in beats if b["camera_id"] == "top"))
        self.assertTrue(all(b["frames_inspected"] == b["frames_expected"] for b in beats if b["camera_id"] == "bottom"))

    def test_the_same_plan_is_the_same_run(self):
        """The same plan gives the same run."""
        plan = RunPlan(start=self.START, coils=2)
        self.assertEqual(list(plan_run(plan).truth_lines()), list(plan_run(plan).truth_lines()))
