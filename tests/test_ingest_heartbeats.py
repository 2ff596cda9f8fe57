"""POST /inspection/heartbeat of ccl-defects and the Jetson link state, over real HTTP with real PostgreSQL."""

import json
from datetime import datetime, timezone

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.jetson_links import JetsonLinkRecords
from ccl.application.jetson_links import LinkTracker
from tests.support.database import fresh_database, query
from tests.support.ingest import pair_parts, post_json, post_parts, start_service, wait_for
from tests.test_ingest_auth import ccl

START, END = "2026-03-01T10:00:00+09:00", "2026-03-01T10:01:00+09:00"


def beat(**extra):
    return {"camera_id": "top", "box_id": "orin-1", "period_start": START, "period_end": END,
            "frames_inspected": 1790, "frames_expected": 1800, **extra}


class Base(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "defects")

    def stored(self):
        return query(self.svc.dsn, "SELECT camera_id, box_id, period_start = %s::timestamptz,"
                                   " period_end = %s::timestamptz, frames_inspected, frames_expected"
                                   " FROM inspection_heartbeats ORDER BY id", (START, END))


class HeartbeatTests(Base):
    @defer.inlineCallbacks
    def test_valid_heartbeat_stored(self):
        """A heartbeat is stored as sent and answered 201 with its row."""
        code, body = yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        self.assertEqual(code, 201, body)
        self.assertEqual(self.stored(), [("top", "orin-1", True, True, 1790, 1800)])
        data = body["data"]
        self.assertEqual((data["camera_id"], data["box_id"], data["frames_inspected"], data["frames_expected"]),
                         ("top", "orin-1", 1790, 1800))
        self.assertEqual(data["id"], query(self.svc.dsn, "SELECT id FROM inspection_heartbeats")[0][0])

    @defer.inlineCallbacks
    def test_optional_fields(self):
        """Without camera_id the camera is ``top`` (as for uploads and defects); the box and the
        expected frames may be absent."""
        code, body = yield post_json(self.svc.url, "/inspection/heartbeat",
                                     {"period_start": START, "period_end": END, "frames_inspected": 0})
        self.assertEqual(code, 201, body)
        self.assertEqual(self.stored(), [("top", None, True, True, 0, None)])

    @defer.inlineCallbacks
    def test_retried_heartbeat_stored_once(self):
        """The same heartbeat again (a lost reply) is answered 200 with the stored row; nothing more is stored."""
        code, first = yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        self.assertEqual(code, 201)
        # The same period in another offset is the same period.
        code, again = yield post_json(self.svc.url, "/inspection/heartbeat",
                                      beat(period_start="2026-03-01T01:00:00Z", period_end="2026-03-01T01:01:00+00:00"))
        self.assertEqual(code, 200, again)
        self.assertTrue(again["duplicate"])
        self.assertEqual(again["data"]["id"], first["data"]["id"])
        self.assertEqual(len(self.stored()), 1)

    @defer.inlineCallbacks
    def test_event_sent_once(self):
        """A stored heartbeat is announced on ccl_events (live tracking recomputes coverage from
        it); its retry is not announced again."""
        events = []
        yield self.svc.db.listen("ccl_events", events.append)
        code, first = yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        self.assertEqual(code, 201)
        code, _ = yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        self.assertEqual(code, 200)
        code, second = yield post_json(self.svc.url, "/inspection/heartbeat", beat(camera_id="bottom"))
        self.assertEqual(code, 201)
        # Events come in commit order: the retry, between the two, would show up before the second.
        yield wait_for(lambda: [e for e in events if e.get("table") == "inspection_heartbeats"
                                and e["id"] == second["data"]["id"]], "the second heartbeat's event")
        beats = [e for e in events if e.get("table") == "inspection_heartbeats"]
        self.assertEqual([(e["id"], e["camera_id"]) for e in beats],
                         [(first["data"]["id"], "top"), (second["data"]["id"], "bottom")])
        self.assertEqual({k: v for k, v in beats[0].items() if k not in ("period_start", "period_end")},
                         {"table": "inspection_heartbeats", "id": first["data"]["id"], "camera_id": "top",
                          "box_id": "orin-1", "frames_inspected": 1790, "frames_expected": 1800})
        self.assertEqual([datetime.fromisoformat(beats[0][k]) for k in ("period_start", "period_end")],
                         [datetime.fromisoformat(START), datetime.fromisoformat(END)])

    @defer.inlineCallbacks
    def test_other_figures_for_a_stored_period_refused(self):
        """A different report for a stored camera and period is 409, and the stored one stays."""
        yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        code, body = yield post_json(self.svc.url, "/inspection/heartbeat", beat(frames_inspected=5))
        self.assertEqual(code, 409, body)
        self.assertEqual(body["details"]["stored"]["frames_inspected"], 1790)
        self.assertEqual(self.stored(), [("top", "orin-1", True, True, 1790, 1800)])

    @defer.inlineCallbacks
    def test_other_cameras_and_periods_are_separate(self):
        """Heartbeats of other cameras or other periods are stored as separate rows."""
        yield post_json(self.svc.url, "/inspection/heartbeat", beat())
        code, _ = yield post_json(self.svc.url, "/inspection/heartbeat", beat(camera_id="bottom"))
        self.assertEqual(code, 201)
        code, _ = yield post_json(self.svc.url, "/inspection/heartbeat",
                                  beat(period_start=END, period_end="2026-03-01T10:02:00+09:00"))
        self.assertEqual(code, 201)
        self.assertEqual(query(self.svc.dsn, "SELECT count(*) FROM inspection_heartbeats"), [(3,)])


class BadHeartbeatTests(Base):
    @defer.inlineCallbacks
    def assertRefused(self, payload, status, field, raw=None, headers=None):
        code, body = yield post_json(self.svc.url, "/inspection/heartbeat", payload, raw=raw, headers=headers)
        self.assertEqual(code, status, body)
        self.assertTrue(body["error"])
        self.assertIn(field, json.dumps(body))
        self.assertEqual(self.stored(), [])

    def test_end_before_start(self):
        """A period ending before it starts is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(period_start=END, period_end=START), 422, "period_end")

    def test_empty_period(self):
        """An empty period is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(period_end=START), 422, "must be after period_start")

    def test_period_over_the_limit(self):
        """A period longer than heartbeat_max_seconds is refused with 422 and nothing is stored."""
        # [defects] heartbeat_max_seconds = 300
        return self.assertRefused(beat(period_end="2026-03-01T10:05:00.001+09:00"), 422, "at most 300 s")

    def test_negative_frames(self):
        """A negative frames_inspected is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(frames_inspected=-1), 422, "frames_inspected")

    def test_fractional_frames(self):
        """A fractional frames_inspected is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(frames_inspected=1.5), 422, "frames_inspected")

    def test_frames_as_text(self):
        """frames_inspected given as text is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(frames_inspected="12"), 422, "frames_inspected")

    def test_frames_missing(self):
        """A heartbeat without frames_inspected is refused with 422 and nothing is stored."""
        payload = beat()
        del payload["frames_inspected"]
        return self.assertRefused(payload, 422, "frames_inspected")

    def test_negative_expected_frames(self):
        """A negative frames_expected is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(frames_expected=-5), 422, "frames_expected")

    def test_time_without_offset(self):
        """A period time without a UTC offset is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(period_start="2026-03-01T10:00:00"), 422, "period_start")

    def test_time_not_a_time(self):
        """A period time that is not a time is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(period_end="soon"), 422, "period_end")

    def test_period_missing(self):
        """A heartbeat without period_start is refused with 422 and nothing is stored."""
        payload = beat()
        del payload["period_start"]
        return self.assertRefused(payload, 422, "period_start")

    def test_empty_camera(self):
        """A blank camera id is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(camera_id=" "), 422, "camera_id")

    def test_camera_too_long(self):
        """A camera id over 50 characters is refused with 422 and nothing is stored."""
        return self.assertRefused(beat(camera_id="c" * 51), 422, "camera_id")

    def test_not_an_object(self):
        """A heartbeat that is not a JSON object is refused with 422 and nothing is stored."""
        return self.assertRefused([beat()], 422, "JSON object")

    def test_broken_json(self):
        """Broken JSON is refused with 400 and nothing is stored."""
        return self.assertRefused(None, 400, "not valid JSON", raw=b'{"camera_id": ')

    def test_wrong_media_type(self):
        """A body that is not application/json is refused with 415 and nothing is stored."""
        return self.assertRefused(None, 415, "application/json", raw=json.dumps(beat()).encode(),
                                  headers={"Content-Type": "text/plain"})


class HeartbeatAuthTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_only_a_token_gets_in_when_the_address_is_not_allowed(self):
        """Authenticated as every ingest endpoint: 401 (and nothing stored) without a token, 201 with one."""
        dsn = fresh_database(self)
        code, out, _ = ccl("ingest-token", "--dsn", dsn, "create", "jetson-1")
        token = out.strip().splitlines()[-1]
        svc = yield start_service(self, "defects", allow="10.99.0.0/16", dsn=dsn)
        code, body = yield post_json(svc.url, "/inspection/heartbeat", beat())
        self.assertEqual(code, 401, body)
        code, body = yield post_json(svc.url, "/inspection/heartbeat", beat(), headers={"Authorization": "Bearer nope"})
        self.assertEqual((code, body["error"]), (401, "invalid token"))
        self.assertEqual(query(dsn, "SELECT count(*) FROM inspection_heartbeats"), [(0,)])
        self.assertEqual(query(dsn, "SELECT count(*) FROM link_status"), [(0,)])
        code, body = yield post_json(svc.url, "/inspection/heartbeat", beat(),
                                     headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(code, 201, body)


class LinkStatusTests(TestCase):
    """What the boxes send keeps their link row (``jetson-<camera>``) on the dashboard current."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.dsn = fresh_database(self)
        self.defects = yield start_service(self, "defects", dsn=self.dsn)
        self.images = yield start_service(self, "images", dsn=self.dsn)

    def link(self, name):
        rows = query(self.dsn, "SELECT kind, connected, last_seen_at IS NOT NULL, details FROM link_status"
                               " WHERE link = %s", (name,))
        return rows[0] if rows else None

    @defer.inlineCallbacks
    def test_heartbeat_marks_its_camera_connected(self):
        """A heartbeat marks its camera's Jetson link connected and seen."""
        code, _ = yield post_json(self.defects.url, "/inspection/heartbeat", beat(camera_id="bottom"))
        self.assertEqual(code, 201)
        kind, connected, seen, details = yield wait_for(lambda: self.link("jetson-bottom"), "the link row")
        self.assertEqual((kind, connected, seen), ("jetson", True, True))
        self.assertEqual((details["box_id"], details["address"], details["via"]), ("orin-1", "127.0.0.1", "heartbeat"))

    @defer.inlineCallbacks
    def test_defects_mark_their_cameras_connected(self):
        """Defects mark their cameras' Jetson links connected, via defects."""
        code, _ = yield post_json(self.defects.url, "/defect/single",
                                  {"coil_number": "C1", "defect_type": "dent", "confidence_score": 0.5,
                                   "camera_id": "top"})
        self.assertEqual(code, 201)
        code, _ = yield post_json(self.defects.url, "/defect/batch", {"coil_number": "C1", "defects": [
            {"defect_type": "dent", "confidence_score": 0.5, "camera_id": "bottom"},
            {"defect_type": "dent", "confidence_score": 0.5, "camera_id": "side"}]})
        self.assertEqual(code, 201)
        for name in ("jetson-top", "jetson-bottom", "jetson-side"):
            row = yield wait_for(lambda name=name: self.link(name), name)
            self.assertEqual(row[:3], ("jetson", True, True))
            self.assertEqual(row[3]["via"], "defects")

    @defer.inlineCallbacks
    def test_image_upload_marks_its_camera_connected_and_keeps_the_box(self):
        """An upload after a heartbeat updates the same row and keeps what the heartbeat said (the box)."""
        yield post_json(self.defects.url, "/inspection/heartbeat", beat(camera_id="top"))
        yield wait_for(lambda: self.link("jetson-top"), "the heartbeat's link row")
        query(self.dsn, "UPDATE link_status SET last_seen_at = last_seen_at - interval '1 hour', connected = false")
        before = query(self.dsn, "SELECT last_seen_at FROM link_status")[0][0]
        code, body = yield post_parts(self.images.url, pair_parts(camera_id="top"))
        self.assertEqual(code, 201, body)
        row = yield wait_for(lambda: (lambda r: r if r and r[1] else None)(self.link("jetson-top")), "the upload")
        self.assertEqual((row[3]["via"], row[3]["box_id"]), ("upload", "orin-1"))
        self.assertGreater(query(self.dsn, "SELECT last_seen_at FROM link_status")[0][0], before)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM link_status"), [(1,)])

    @defer.inlineCallbacks
    def test_silent_camera_marked_disconnected(self):
        """A camera heard from no longer than [ingest] link_silent_seconds ago stays connected; older, it is not."""
        yield post_json(self.defects.url, "/inspection/heartbeat", beat(camera_id="top"))
        yield post_json(self.defects.url, "/inspection/heartbeat", beat(camera_id="bottom"))
        yield wait_for(lambda: self.link("jetson-top") and self.link("jetson-bottom"), "both link rows")
        query(self.dsn, "UPDATE link_status SET last_seen_at = last_seen_at - interval '61 seconds'"
                        " WHERE link = 'jetson-bottom'")
        interval, flush = self.defects.jobs[-1]
        self.assertEqual(interval, 5.0)  # [ingest] link_save_seconds
        yield flush()
        self.assertEqual(query(self.dsn, "SELECT link, connected FROM link_status ORDER BY link"),
                         [("jetson-bottom", False), ("jetson-top", True)])


class LinkTrackerTests(TestCase):
    """The tracker writes a camera's row at once when it has not written it for save_interval,
    otherwise keeps the newest sighting for the next flush (a clock of its own, real PostgreSQL)."""

    timeout = 60

    @defer.inlineCallbacks
    def test_writes_at_once_then_at_most_every_interval(self):
        """The link tracker writes a camera's row at once, then at most every save_interval."""
        svc = yield start_service(self, "defects")
        clock = task.Clock()
        start = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)
        clock.advance(start.timestamp())
        # silent_after far beyond the fixed clock's distance from the database's now(): only
        # the writes are looked at here.
        tracker = LinkTracker(JetsonLinkRecords(svc.db), clock, save_interval=5.0, silent_after=10 * 365 * 86400)

        def seen():
            rows = query(svc.dsn, "SELECT extract(epoch FROM last_seen_at - %s) FROM link_status"
                                  " WHERE link = 'jetson-top'", (start,))
            return float(rows[0][0]) if rows else None

        tracker.seen("top", "defects")
        yield wait_for(lambda: seen() == 0.0, "the first sighting written at once")
        clock.advance(2)
        tracker.seen("top", "defects", address="10.0.0.5")
        yield tracker.flush()
        self.assertEqual(seen(), 2.0)  # written by the flush, not before
        clock.advance(1)
        tracker.seen("top", "heartbeat")
        clock.advance(10)
        tracker.seen("top", "heartbeat", box_id="orin-9")  # 10 s after the last write: at once
        yield wait_for(lambda: seen() == 13.0, "the sighting after the interval written at once")
        details = query(svc.dsn, "SELECT details FROM link_status")[0][0]
        self.assertEqual((details["address"], details["box_id"], details["via"]), ("10.0.0.5", "orin-9", "heartbeat"))
        yield tracker.flush()  # nothing waits: the row stays as it is
        self.assertEqual(seen(), 13.0)
