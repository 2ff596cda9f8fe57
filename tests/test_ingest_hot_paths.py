"""The fast paths of ingestion: hot routes beside Klein, the group writer, thumbnails that give
way to uploads. Real HTTP, real PostgreSQL, real files."""

import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import attrs
import treq
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.defect_store import SingleWriter
from ccl.adapters.storage.image_store import ImageStore
from ccl.adapters.storage.thumbnails import Thumbnailer
from ccl.domain.ingest.defects import Thresholds, validate_defect
from tests.support.database import DatabaseTestCase, query
from tests.support.ingest import image_bytes, post_json, start_service, wait_for

#: The present the defects are validated at (time is an input; a defect without detection_time gets it).
DETECTED_AT = datetime(2026, 11, 27, 1, 15, tzinfo=timezone.utc)


def defect(**extra):
    return {"coil_number": "C77", "defect_type": "scratch", "confidence_score": 0.7,
            "event_id": str(uuid.uuid4()), **extra}


class HotRouteTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "defects")

    @defer.inlineCallbacks
    def request(self, method, path, body=b"", headers=None):
        response = yield treq.request(method, self.svc.url + path, data=body, persistent=False,
                                      headers={"Content-Type": "application/json", **(headers or {})})
        content = yield response.content()
        return response, content

    @defer.inlineCallbacks
    def test_reply_has_a_length_and_is_not_chunked(self):
        """A defect POST's reply carries Content-Length (not chunked) and the JSON content type."""
        response, content = yield self.request("POST", "/defect/single", b'{"coil_number": "C1", '
                                               b'"defect_type": "dent", "confidence_score": 0.5}')
        self.assertEqual(response.code, 201, content)
        # twisted's client keeps Content-Length to itself: a chunked reply has UNKNOWN_LENGTH.
        self.assertEqual(response.length, len(content))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json; charset=utf-8"])

    @defer.inlineCallbacks
    def test_other_methods_and_paths_still_answered_by_the_app(self):
        """Other methods and paths on the hot routes still get the app's 405, 404 and 400 answers."""
        response, content = yield self.request("GET", "/defect/single")
        self.assertEqual((response.code, b"method not allowed" in content), (405, True), content)
        response, content = yield self.request("POST", "/defect/single/", b"{}")
        self.assertEqual((response.code, b"not found" in content), (404, True), content)
        response, content = yield self.request("POST", "/defect/batch?x=1", b"[]")
        self.assertEqual(response.code, 400, content)  # the hot route, query string and all
        response, content = yield self.request("GET", "/stats")
        self.assertEqual(response.code, 200, content)
        self.assertEqual(query(self.svc.dsn, "SELECT count(*) FROM defect_detections"), [(0,)])

    @defer.inlineCallbacks
    def test_refusals_on_the_hot_route_are_json_and_write_nothing(self):
        """Refusals on the hot route (422, 415) are JSON and write nothing."""
        code, body = yield post_json(self.svc.url, "/defect/single", defect(confidence_score=1.5))
        self.assertEqual((code, body["error"]), (422, "invalid defect"))
        response, content = yield self.request("POST", "/defect/single", b"{}", {"Content-Type": "text/plain"})
        self.assertEqual((response.code, b"send application/json" in content), (415, True))
        self.assertEqual(query(self.svc.dsn, "SELECT count(*) FROM defect_detections"), [(0,)])

    @defer.inlineCallbacks
    def test_many_concurrent_posts_share_statements_and_each_gets_its_row(self):
        """Sixty concurrent defect POSTs each get their own row and reply."""
        posts = [defect(defect_position_meter=float(i), detection_time="2025-04-09T13:59:14.5+09:00")
                 for i in range(60)]
        results = yield defer.gatherResults([post_json(self.svc.url, "/defect/single", p) for p in posts])
        for post, (code, body) in zip(posts, results):
            self.assertEqual(code, 201, body)
            self.assertEqual((body["data"]["event_id"], body["data"]["defect_position_meter"]),
                             (post["event_id"], post["defect_position_meter"]))
        rows = query(self.svc.dsn, "SELECT count(*), count(DISTINCT id), min(detection_time) = max(detection_time),"
                                   " min(detection_time) = '2025-04-09T04:59:14.5Z' FROM defect_detections")
        self.assertEqual(rows, [(60, 60, True, True)])


class GroupWriterTests(TestCase, DatabaseTestCase):
    timeout = 60

    def setUp(self):
        return self.start_database()

    def defect(self, **extra):
        return validate_defect(defect(**extra), Thresholds(), now=DETECTED_AT)

    @defer.inlineCallbacks
    def test_a_defect_the_database_refuses_fails_alone(self):
        """A defect PostgreSQL refuses fails alone; those submitted with it in one statement are stored."""
        writer = SingleWriter(self.db)
        # Submitted in one reactor turn: the three go as one statement, which fails on the bad one.
        first = writer.submit(self.defect())
        # Validation refuses this text; made past it here, it stands for any row the database refuses.
        bad = writer.submit(attrs.evolve(self.defect(), defect_type="scratch \ud800"))
        good = writer.submit(self.defect(defect_type="dent"))
        bad_failure = []
        bad.addErrback(bad_failure.append)
        (_, created_first), (row, created_good) = yield defer.gatherResults([first, good])
        yield wait_for(lambda: bad_failure)
        self.assertEqual((created_first, created_good, '"dent"' in row), (True, True, True))
        self.assertEqual(self.sql("SELECT defect_type FROM defect_detections ORDER BY id"), [("scratch",), ("dent",)])


class ThumbnailYieldTests(TestCase, DatabaseTestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        yield self.start_database()
        self.store = ImageStore(Path(self.mktemp()), max_pixels=10**7, thumbnail_size=64)
        self.store.prepare()
        self.names = []
        for i in range(3):
            name = f"C1_2025040913591{i}000_original.jpg"
            Path(self.store.folder("original"), name).write_bytes(image_bytes("JPEG", size=(320, 200)))
            self.names.append(name)

    def made(self):
        return sorted(p.name for p in self.store.thumbnail_folder("original").iterdir())

    @defer.inlineCallbacks
    def test_one_thumbnail_per_turn_while_uploads_are_in_flight(self):
        """While uploads are in flight one thumbnail is made per turn; once quiet the rest go back to back."""
        clock = task.Clock()
        thumbnailer = Thumbnailer(self.store, self.db, clock=clock, yield_seconds=0.5)
        thumbnailer.upload_started()
        for i, name in enumerate(self.names):
            thumbnailer.request(i + 1, "original", name)
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((self.made(), thumbnailer.backlog()), ([], 3))

        clock.advance(0.5)  # its turn: exactly one is made, then it waits again
        yield wait_for(lambda: thumbnailer.made == 1)
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual((len(self.made()), thumbnailer.backlog()), (1, 2))

        thumbnailer.upload_finished()
        clock.advance(0.4)  # uploads ended only just now: still one per turn
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(len(self.made()), 1)
        clock.advance(0.1)  # the line is quiet: the rest go back to back, no timer left behind
        yield thumbnailer.idle()
        self.assertEqual(len(self.made()), 3)
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_without_uploads_thumbnails_go_back_to_back(self):
        """Without uploads, thumbnails are made back to back."""
        thumbnailer = Thumbnailer(self.store, self.db, clock=task.Clock())
        for i, name in enumerate(self.names):
            thumbnailer.request(i + 1, "original", name)
        yield thumbnailer.idle()
        self.assertEqual(len(self.made()), 3)

    def tearDown(self):
        shutil.rmtree(self.store.root, ignore_errors=True)
