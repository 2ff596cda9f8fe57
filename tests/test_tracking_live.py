"""Live coil tracking: defects posted to the real ccl-defects (real HTTP, real PostgreSQL) are
placed by its tracking component within moments, on the right coil and metre within their
stated uncertainty; a new speed sample settles a provisional placement; a late weld moves
what it should."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.config import load_config
from ccl.services.tracking import live_tracking
from tests.support.database import query
from tests.support.ingest import pair_parts, post_json, post_parts, start_service, wait_for
from tests.support.tracking import ENV, Line, true_metre


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


class LiveLine(TestCase):
    """The line of the last 10 minutes, and ccl-defects with its live tracker (``env``: settings)."""

    timeout = 120
    env = ENV

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "defects", env=self.env)
        import psycopg2

        self.connection = psycopg2.connect(self.svc.dsn)
        self.connection.autocommit = True
        self.addCleanup(self.connection.close)
        # The line ran for the last 10 minutes at 2 m/s: A's weld at 30 s, B's at 330 s.
        self.t0 = math.floor(reactor.seconds()) - 600
        self.line = Line(self.connection, self.t0)
        self.line.speeds(0, 597)
        self.line.schedule(0, "A", 600)
        self.line.weld(30, "A")
        self.line.weld(330, "B")
        config = load_config({"CCL_DATABASE_DSN": self.svc.dsn, **self.env})
        self.component = live_tracking(config, self.svc.db, reactor)
        self.component.startService()
        self.addCleanup(self.component.tracker.idle)
        self.addCleanup(self.component.stopService)
        yield self.component.tracker.idle()

    def placements(self):
        return {row[0]: row[1:] for row in query(
            self.svc.dsn, "SELECT d.id, t.tracked_coil, t.metre, t.uncertainty_m, t.camera_id, t.provisional,"
                          " t.coil_disagrees, t.box_coil FROM tracking_defects t JOIN defect_detections d"
                          " ON d.id = t.defect_id")}


class LivePlacement(LiveLine):
    @defer.inlineCallbacks
    def test_defects_stored_through_ccl_defects_land_on_their_coil_and_metre(self):
        """Defects stored through ccl-defects are placed on their coil and metre within the stated uncertainty."""
        t0 = self.t0
        code, _ = yield post_json(self.svc.url, "/defect/single", {
            "coil_number": "A", "defect_type": "scratch", "confidence_score": 0.9, "detection_time": stamp(t0 + 100)})
        self.assertEqual(code, 201)
        code, _ = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "A", "defects": [
            {"defect_type": "dent", "confidence_score": 0.8, "detection_time": stamp(t0 + 200)},
            {"defect_type": "dent", "confidence_score": 0.8, "detection_time": stamp(t0 + 400), "camera_id": "bottom"},
            {"defect_type": "stain", "confidence_score": 0.7, "detection_time": stamp(t0 + 598.5)}]})
        self.assertEqual(code, 201)
        placed = yield wait_for(lambda: len(self.placements()) == 4 and self.placements(), "4 placements")
        truth = {100: ("A", true_metre(100, 0, 30)), 200: ("A", true_metre(200, 0, 30)),
                 400: ("B", true_metre(400, 0, 330, camera_m=62)), 598.5: ("B", true_metre(598.5, 0, 330))}
        by_time = dict(zip(sorted(truth), [placed[i] for i in sorted(placed)]))  # ids in posting order
        for at, (coil, metre) in truth.items():
            tracked, placed_metre, uncertainty, camera, provisional, disagrees, box = by_time[at]
            self.assertEqual(tracked, coil, f"defect at {at} s")
            self.assertLessEqual(abs(placed_metre - metre), uncertainty, f"defect at {at} s")
            self.assertEqual(disagrees, coil != "A")  # the box said A for all of them
            self.assertEqual(box, "A")
        self.assertTrue(by_time[598.5][3])  # past the newest speed sample (597 s)
        # The next speed sample settles it.
        self.line.telegram("tc_4003_speed", 600, line_speed=120)
        last = max(placed)
        settled = yield wait_for(lambda: not self.placements()[last][4] and self.placements()[last], "settled")
        self.assertLessEqual(abs(settled[1] - truth[598.5][1]), settled[2])
        # ... and B, the running coil, shows its inspected metres advancing (2 m/s x 600 s - 60 m - head 660 m).
        yield wait_for(lambda: query(self.svc.dsn, "SELECT (inspected_m->>'top')::float8 FROM tracking_coils"
                                                   " WHERE tracked_coil = 'B'") == [(480.0,)], "B at 480 m")
        # C's weld passed at 500 s; its telegram comes late (received 601 s): the last defect moves to C.
        self.line.weld(601, "C", sent=500)
        moved = yield wait_for(lambda: self.placements()[last][0] == "C" and self.placements()[last], "moved to C")
        self.assertLessEqual(abs(moved[1] - true_metre(598.5, 0, 500)), moved[2])
        self.assertEqual(self.placements()[sorted(placed)[2]][0], "B")  # the 400 s defect stays on B
        self.assertGreaterEqual(self.component.tracker.placed, 4)

    @defer.inlineCallbacks
    def test_a_defect_older_than_the_live_model_is_placed_from_its_period(self):
        """A defect older than the live model's window is placed by tracking its period again."""
        # The line also ran in the 1,000 s before t0, coil Z from -900 s: telegrams stored long
        # ago (no event now), before the live model's window (the last 15 minutes). A box that
        # caught up posts a defect of -500 s: its period is tracked again for it.
        self.line.speeds(-1000, -3, notify=False)
        self.line.weld(-900, "Z", notify=False)
        yield self.component.tracker.idle()
        code, _ = yield post_json(self.svc.url, "/defect/single", {
            "coil_number": "Z", "defect_type": "scratch", "confidence_score": 0.9,
            "detection_time": stamp(self.t0 - 500)})
        self.assertEqual(code, 201)
        [(coil, metre, uncertainty, *_rest)] = yield wait_for(lambda: list(self.placements().values()), "placed")
        self.assertEqual(coil, "Z")
        self.assertLessEqual(abs(metre - true_metre(-500, 0, -900)), uncertainty)

    @defer.inlineCallbacks
    def test_an_image_pair_uploaded_to_ccl_images_is_placed(self):
        """Both images of a pair uploaded to ccl-images are placed on their coil and metre."""
        images = yield start_service(self, "images", dsn=self.svc.dsn)
        code, _ = yield post_parts(images.url, pair_parts(coil="A", captured_at=stamp(self.t0 + 150),
                                                          camera_id="bottom"))
        self.assertEqual(code, 201)
        rows = yield wait_for(lambda: len(query(self.svc.dsn, "SELECT 1 FROM tracking_images")) == 2 and query(
            self.svc.dsn, "SELECT i.kind, t.tracked_coil, t.metre, t.uncertainty_m, t.surface, t.time_source"
                          " FROM tracking_images t JOIN images i ON i.id = t.image_id ORDER BY i.kind"), "2 images")
        for kind, coil, metre, uncertainty, surface, source in rows:
            self.assertEqual((coil, surface, source), ("A", "bottom", "box"), kind)
            self.assertLessEqual(abs(metre - true_metre(150, 0, 30, camera_m=62)), uncertainty)


class DetectionTimeSource(LiveLine):
    """Top's box clock runs 5 s ahead (and the setting says so). A defect posted without a
    detection_time is stamped with its receipt, stored as such ('received') and placed at that
    moment, with no clock offset and received_time_uncertainty_s; one with the box's stamp
    ('box') is corrected by the offset and gets box_time_uncertainty_s."""

    env = {**ENV, "CCL_TRACKING_CAMERA_CLOCK_OFFSETS_S": "top:5", "CCL_TRACKING_BOX_TIME_UNCERTAINTY_S": "0.1",
           "CCL_TRACKING_RECEIVED_TIME_UNCERTAINTY_S": "2"}

    def stored(self):
        return {row[0]: row[1:] for row in query(
            self.svc.dsn, "SELECT d.id, d.detection_time_source, extract(epoch FROM d.detection_time)::float8,"
                          " extract(epoch FROM d.received_at)::float8, t.time_source,"
                          " extract(epoch FROM t.detected_at)::float8, t.metre,"
                          " t.uncertainty_m FROM defect_detections d"
                          " LEFT JOIN tracking_defects t ON t.defect_id = d.id ORDER BY d.id")}

    @defer.inlineCallbacks
    def test_a_receipt_stamp_is_placed_without_the_clock_offset_and_with_its_own_uncertainty(self):
        """A single post without detection_time: source 'received', placed at its receipt,
        no clock offset, the larger uncertainty; a box stamp of the same moment: 'box', offset off."""
        code, _ = yield post_json(self.svc.url, "/defect/single", {
            "coil_number": "B", "defect_type": "scratch", "confidence_score": 0.9})
        self.assertEqual(code, 201)
        [(received_id, (source, detection, received_at, *_))] = self.stored().items()
        self.assertEqual(source, "received")
        self.assertLess(abs(detection - received_at), 1.0)  # the service's clock and the database's
        # The box's stamp of the same moment, on its clock 5 s ahead.
        code, _ = yield post_json(self.svc.url, "/defect/single", {
            "coil_number": "B", "defect_type": "scratch", "confidence_score": 0.9,
            "detection_time": stamp(received_at + 5)})
        self.assertEqual(code, 201)
        rows = yield wait_for(lambda: all(r[3] is not None for r in self.stored().values()) and self.stored(),
                              "both placed")
        box_id = max(rows)
        self.assertEqual(rows[received_id][0], "received")
        self.assertEqual(rows[box_id][0], "box")
        (_s, _d, _r, received_source, received_at_placed, received_metre, received_u) = rows[received_id]
        (_s, _d, _r, box_source, box_at_placed, box_metre, box_u) = rows[box_id]
        self.assertEqual((received_source, box_source), ("received", "box"))
        self.assertAlmostEqual(received_at_placed, received_at, places=3)  # no offset taken off
        self.assertAlmostEqual(box_at_placed, received_at, places=3)  # 5 s taken off
        self.assertAlmostEqual(received_metre, box_metre, places=3)
        # Same moment, same line: the bounds differ by the speed (2 m/s) x (2 s - 0.1 s).
        self.assertAlmostEqual(received_u - box_u, 2.0 * 1.9, places=3)

    @defer.inlineCallbacks
    def test_a_batch_records_each_defects_time_source(self):
        """A batch (fast path, and the normal path for a 12.0-pixel item): each item's source."""
        for x in (12, 12.0):  # 12.0 fails the fast lane: validate_batch stores the batch
            code, _ = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "B", "defects": [
                {"defect_type": "dent", "confidence_score": 0.8, "defect_position_x": x},
                {"defect_type": "dent", "confidence_score": 0.8, "detection_time": stamp(self.t0 + 400)}]})
            self.assertEqual(code, 201)
        big = [{"defect_type": "dent", "confidence_score": 0.8}, {"defect_type": "dent", "confidence_score": 0.8,
                                                                 "detection_time": stamp(self.t0 + 400)}] * 15
        code, _ = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "B", "defects": big})  # by COPY
        self.assertEqual(code, 201)
        rows = yield wait_for(lambda: len(self.stored()) == 34 and all(r[3] is not None for r in self.stored().values())
                              and self.stored(), "34 placed")
        for row_id, (source, detection, received_at, placed_source, detected_at, _m, _u) in rows.items():
            self.assertEqual(placed_source, source, row_id)
            if source == "received":
                self.assertLess(abs(detection - received_at), 1.0, row_id)
                self.assertEqual(detected_at, received_at, row_id)
            else:
                self.assertAlmostEqual(detected_at, self.t0 + 400 - 5, places=3, msg=row_id)
        self.assertEqual(sorted(r[0] for r in rows.values()).count("received"), 17)


class HeartbeatCoverage(LiveLine):
    """A heartbeat posted to ccl-defects reaches the live tracker by its NOTIFY: the sweep here
    runs once at start and then not for a day, so only the event can change the coverage."""

    env = {**ENV, "CCL_TRACKING_SWEEP_SECONDS": "86400"}

    def coverage(self, coil: str) -> float | None:
        return query(self.svc.dsn, "SELECT (coverage->>'top')::float8 FROM tracking_coils WHERE tracked_coil = %s",
                     (coil,))[0][0]

    @defer.inlineCallbacks
    def test_a_heartbeat_changes_the_coverage_of_its_coils_at_once(self):
        """A passes the top camera from 60 s to 360 s (600 m): unknown coverage without heartbeats,
        140 s of its 300 s after a heartbeat of 50-200 s, all of it after one of 200-400 s."""
        self.assertIsNone(self.coverage("A"))
        for start, end, share in ((50, 200, 140 / 300), (200, 400, 1.0)):
            code, body = yield post_json(self.svc.url, "/inspection/heartbeat", {
                "camera_id": "top", "period_start": stamp(self.t0 + start), "period_end": stamp(self.t0 + end),
                "frames_inspected": 900, "frames_expected": 900})
            self.assertEqual(code, 201, body)
            yield wait_for(lambda: self.coverage("A") is not None and abs(self.coverage("A") - share) < 1e-6,
                           f"A's top coverage {share:.3f}")
