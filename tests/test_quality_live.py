"""The quality watch live: defects posted to the real ccl-defects (real HTTP, real PostgreSQL),
placed by its tracking component, make a stored periodic series with its likely roll and an
alert (NOTIFY on the events channel); random defects make none; a coil that completes is
settled and graded by the active rule book, naming its version and the reasons."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone

import psycopg2
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.config import load_config
from ccl.services.tracking import live_tracking
from tests.support.database import query
from tests.support.ingest import post_json, start_service, wait_for
from tests.support.tracking import ENV, Line

#: One roll of 2.000 m circumference: the line runs 2 m/s, so it marks the strip once a second.
ROLL_DIAMETER_MM = 2000.0 / math.pi


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


class Listener:
    """A LISTEN on ccl_events of its own (psycopg2), collecting the alert events."""

    def __init__(self, dsn: str):
        self.connection = psycopg2.connect(dsn)
        self.connection.autocommit = True
        self.connection.cursor().execute("LISTEN ccl_events")

    def events(self) -> list[dict]:
        self.connection.poll()
        found = []
        while self.connection.notifies:
            found.append(json.loads(self.connection.notifies.pop(0).payload))
        return found


class LiveQuality(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "defects", env=ENV)
        self.connection = psycopg2.connect(self.svc.dsn)
        self.connection.autocommit = True
        self.addCleanup(self.connection.close)
        with self.connection.cursor() as cursor:
            cursor.execute("INSERT INTO quality_rolls (name, diameter_mm, location) VALUES ('브라이들 #2', %s, 'exit'),"
                           " ('디플렉터', 400, 'entry')", (ROLL_DIAMETER_MM,))
        # The line ran for the last 10 minutes at 2 m/s; coil A's weld passed at 30 s, so A is
        # under the cameras from 60 s (60 m on) and still running.
        self.t0 = math.floor(reactor.seconds()) - 600
        self.line = Line(self.connection, self.t0)
        self.line.speeds(0, 597)
        self.line.schedule(0, "A", 1200)
        self.line.weld(30, "A")
        self.listener = Listener(self.svc.dsn)
        self.addCleanup(self.listener.connection.close)
        config = load_config({"CCL_DATABASE_DSN": self.svc.dsn, **ENV})
        self.component = live_tracking(config, self.svc.db, reactor)
        self.component.startService()
        self.addCleanup(lambda: self.component.quality.idle())
        self.addCleanup(self.component.tracker.idle)
        self.addCleanup(self.component.stopService)
        yield self.component.tracker.idle()

    def series(self):
        return query(self.svc.dsn, "SELECT s.tracked_coil, s.defect_type, s.surface, s.pitch_m, s.cross_mm, s.members,"
                                   " s.likely_roll, s.status, array_agg(m.defect_id ORDER BY m.defect_id)"
                                   " FROM periodic_series s JOIN periodic_members m ON m.series_id = s.id"
                                   " GROUP BY s.id ORDER BY s.id")

    def alerts(self, rule):
        return query(self.svc.dsn, "SELECT subject, severity, message, details FROM alerts WHERE rule = %s"
                                   " ORDER BY id", (rule,))

    def post(self, defects):
        return post_json(self.svc.url, "/defect/batch", {"coil_number": "A", "defects": defects})

    @defer.inlineCallbacks
    def test_a_roll_mark_series_is_stored_alerted_and_graded_at_completion(self):
        """Twelve scratches a second apart (2 m at 2 m/s) at one place across the strip, among random
        defects: one series of exactly those twelve at 2.000 m, the roll of 2 m circumference named,
        an alert announced on the events channel; when A's tail passes the shear its series is final
        and A is graded C/downgrade by rule book v1 with the periodic rule among the reasons."""
        rng = random.Random(5)
        noise = [{"defect_type": "scratch", "confidence_score": 0.7, "detection_time": stamp(self.t0 + rng.uniform(70, 300)),
                  "defect_position_x": rng.randrange(0, 1500), "defect_size_width": 6, "defect_size_height": 6}
                 for _ in range(25)]
        code, _ = yield self.post(noise)
        self.assertEqual(code, 201)
        marks = [{"defect_type": "scratch", "confidence_score": 0.9, "detection_time": stamp(self.t0 + 150 + k),
                  "defect_position_x": 700 + (k % 3), "defect_size_width": 10, "defect_size_height": 8}
                 for k in range(12)]
        code, reply = yield self.post(marks[:4])  # four marks are not a series yet
        self.assertEqual(code, 201)
        yield wait_for(lambda: query(self.svc.dsn, "SELECT count(*) FROM tracking_defects")[0][0] == 29, "placed")
        yield self.component.quality.idle()
        self.assertEqual(self.series(), [])
        code, _ = yield self.post(marks[4:])
        self.assertEqual(code, 201)
        found = yield wait_for(self.series, "a periodic series")
        ids = [r[0] for r in query(self.svc.dsn, "SELECT id FROM defect_detections WHERE confidence_score = 0.9"
                                                 " ORDER BY id")]
        self.assertEqual(len(found), 1)
        coil, defect_type, surface, pitch, cross, members, roll, status, member_ids = found[0]
        self.assertEqual((coil, defect_type, surface, members, roll, status), ("A", "scratch", "top", 12, "브라이들 #2", "live"))
        self.assertAlmostEqual(pitch, 2.0, delta=0.01)
        self.assertAlmostEqual(cross, 706.0, delta=2.0)
        self.assertEqual(member_ids, ids)
        alert = yield wait_for(lambda: self.alerts("quality.periodic"), "the periodic alert")
        self.assertEqual(len(alert), 1)
        self.assertEqual(alert[0][1], "warning")
        self.assertIn("2.000 m", alert[0][2])
        self.assertIn("브라이들 #2", alert[0][2])
        self.assertEqual(sorted(alert[0][3]["defect_ids"]), ids)
        events = yield wait_for(lambda: [e for e in self.listener.events() if e.get("type") == "alert"], "NOTIFY")
        self.assertEqual([(e["event"], e["rule"]) for e in events if e["rule"] == "quality.periodic"],
                         [("raised", "quality.periodic")])
        # B's weld passes at 400 s: A's tail reaches the shear (180 m on) at 490 s, where the MES
        # reports the exit cut (TC 4001) and A is done.
        self.line.weld(400, "B")
        self.line.telegram("tc_4001_cut", 491, coil_number="A", cut_mode=0, winding_length=740)
        graded = yield wait_for(lambda: query(self.svc.dsn, "SELECT grade, disposition, rule_version, reasons,"
                                                            " graded_by FROM coil_grades WHERE tracked_coil = 'A'"),
                                "A graded")
        grade, disposition, version, reasons, graded_by = graded[0]
        self.assertEqual((grade, disposition, version, graded_by), ("C", "downgrade", 1, "completion"))
        self.assertIn("주기성 결함", [r["rule"] for r in reasons])
        self.assertEqual([r[7] for r in self.series()], ["final"])
        self.assertEqual(len(self.alerts("quality.periodic")), 1)  # settling does not alarm again

    @defer.inlineCallbacks
    def test_random_defects_raise_no_series_and_no_alert(self):
        """Sixty defects of one type at random places along and across the coil: no series, no alert."""
        rng = random.Random(9)
        code, _ = yield self.post([
            {"defect_type": "scratch", "confidence_score": 0.8, "detection_time": stamp(self.t0 + rng.uniform(70, 590)),
             "defect_position_x": rng.randrange(0, 1500), "defect_size_width": 8, "defect_size_height": 8}
            for _ in range(60)])
        self.assertEqual(code, 201)
        yield wait_for(lambda: query(self.svc.dsn, "SELECT count(*) FROM tracking_defects")[0][0] == 60, "placed")
        yield self.component.quality.idle()
        self.assertEqual(self.series(), [])
        self.assertEqual(self.alerts("quality.periodic"), [])

    @defer.inlineCallbacks
    def test_three_critical_defects_within_fifty_metres_raise_one_cluster_alert(self):
        """The default rule (3 critical within 50 m): three critical defects 10 m apart raise one
        critical alert naming them; a fourth right after raises nothing more."""
        code, _ = yield self.post([{"defect_type": "dent", "confidence_score": 0.99,
                                    "detection_time": stamp(self.t0 + 200 + 5 * k)} for k in range(3)])
        self.assertEqual(code, 201)
        alert = yield wait_for(lambda: self.alerts("quality.critical_cluster"), "the cluster alert")
        self.assertEqual(alert[0][1], "critical")
        self.assertEqual(len(alert[0][3]["defect_ids"]), 3)
        code, _ = yield self.post([{"defect_type": "dent", "confidence_score": 0.99,
                                    "detection_time": stamp(self.t0 + 216)}])
        yield wait_for(lambda: query(self.svc.dsn, "SELECT count(*) FROM tracking_defects")[0][0] == 4, "placed")
        yield self.component.quality.idle()
        self.assertEqual(len(self.alerts("quality.critical_cluster")), 1)
