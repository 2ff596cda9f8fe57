"""ccl-defects over real HTTP with real PostgreSQL."""

import json
import uuid
from datetime import datetime, timezone

import attrs
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.defect_store import defect_stats, event_text
from ccl.domain.ingest.defects import Thresholds, validate_defect
from tests.support.database import query
from tests.support.ingest import get, post_json, start_service, stats_asked_together, wait_for

EVENT = "123e4567-e89b-12d3-a456-426614174000"

#: The present the defects are validated at (time is an input; a defect without detection_time gets it).
DETECTED_AT = datetime(2026, 11, 27, 1, 15, tzinfo=timezone.utc)


def defect(**extra):
    return {"coil_number": "C77", "defect_type": "scratch", "confidence_score": 0.7, **extra}


class Base(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "defects")

    def count(self):
        return query(self.svc.dsn, "SELECT count(*) FROM defect_detections")[0][0]

    @defer.inlineCallbacks
    def assertRefused(self, path, payload, status, fragment="", raw=None):
        code, body = yield post_json(self.svc.url, path, payload, raw=raw)
        self.assertEqual(code, status, body)
        self.assertTrue(body["error"])
        self.assertIn(fragment, json.dumps(body))
        self.assertEqual(self.count(), 0)
        code, _ = yield post_json(self.svc.url, "/defect/single", defect())
        self.assertEqual(code, 201)
        return body


class SingleTests(Base):
    @defer.inlineCallbacks
    def test_stored_with_derived_severity(self):
        """A single defect is stored with all its fields and a severity derived from its confidence."""
        code, body = yield post_json(self.svc.url, "/defect/single", defect(
            confidence_score=0.9, defect_position_x=10, defect_position_y=20, defect_size_width=5,
            defect_size_height=6, defect_position_meter=123.4, detection_time="2025-04-09T13:59:14+09:00",
            camera_id="bottom"))
        self.assertEqual(code, 201, body)
        data = body["data"]
        self.assertEqual((data["severity"], data["needs_review"], data["camera_id"]), ("high", False, "bottom"))
        row = query(self.svc.dsn, "SELECT coil_number, defect_type, confidence_score, severity, defect_position_x,"
                                  " defect_position_meter, detection_time = '2025-04-09T04:59:14Z' FROM defect_detections")
        self.assertEqual(row, [("C77", "scratch", 0.9, "high", 10, 123.4, True)])

    @defer.inlineCallbacks
    def test_confidence_zero_is_valid_and_flagged(self):
        """Confidence 0 is stored as low severity, flagged for review."""
        code, body = yield post_json(self.svc.url, "/defect/single", defect(confidence_score=0))
        self.assertEqual((code, body["data"]["severity"], body["data"]["needs_review"]), (201, "low", True))

    @defer.inlineCallbacks
    def test_thresholds_come_from_system_settings(self):
        """Severity thresholds come from system_settings."""
        query(self.svc.dsn, "UPDATE system_settings SET value = '{\"critical\": 0.5, \"high\": 0.4, \"medium\": 0.3}'"
                            " WHERE key = 'severity_thresholds'")
        code, body = yield post_json(self.svc.url, "/defect/single", defect(confidence_score=0.55))
        self.assertEqual(body["data"]["severity"], "critical")

    @defer.inlineCallbacks
    def test_sent_severity_kept(self):
        """A severity sent by the box is kept."""
        code, body = yield post_json(self.svc.url, "/defect/single", defect(confidence_score=0.1, severity="critical"))
        self.assertEqual((code, body["data"]["severity"]), (201, "critical"))

    @defer.inlineCallbacks
    def test_repeated_event_id_answers_the_stored_row_and_stores_nothing(self):
        """A repeated event id answers 200 with the stored row, marked duplicate, and stores nothing."""
        code, first = yield post_json(self.svc.url, "/defect/single", defect(event_id=EVENT))
        self.assertEqual(code, 201)
        code, again = yield post_json(self.svc.url, "/defect/single", defect(event_id=EVENT, defect_type="dent"))
        self.assertEqual(code, 200)
        self.assertTrue(again["duplicate"])
        self.assertEqual(again["data"], first["data"])
        self.assertEqual(self.count(), 1)

    @defer.inlineCallbacks
    def test_a_resend_timed_in_another_month_is_still_a_repeat(self):
        """A resend of an event whose time now falls in the next month is still answered with the
        stored row and stores nothing (defect_detections is partitioned, schema/123: the unique
        event ids live in defect_event_ids)."""
        code, first = yield post_json(self.svc.url, "/defect/single",
                                      defect(event_id=EVENT, detection_time="2025-01-31T23:59:59Z"))
        self.assertEqual(code, 201, first)
        code, again = yield post_json(self.svc.url, "/defect/single",
                                      defect(event_id=EVENT, detection_time="2025-02-01T00:00:01Z"))
        self.assertEqual((code, again["duplicate"], again["data"]), (200, True, first["data"]))
        self.assertEqual(query(self.svc.dsn, "SELECT count(*), min(detection_time) = '2025-01-31T23:59:59Z'"
                                             " FROM defect_detections"), [(1, True)])

    @defer.inlineCallbacks
    def test_concurrent_posts_each_answered_and_stored_once(self):
        """Posts arriving together are each answered, stored once, and a bad one fails alone."""
        # Posts that arrive together are committed together; each still gets its own answer.
        posts = [defect(defect_position_meter=float(i)) for i in range(44)]
        posts += [defect(event_id=EVENT, defect_position_meter=99.0) for _ in range(5)]
        posts.append(defect(model_id=999))
        results = yield defer.gatherResults([post_json(self.svc.url, "/defect/single", p) for p in posts])
        codes = [code for code, _ in results]
        self.assertEqual(codes[:44], [201] * 44)
        self.assertEqual(sorted(codes[44:49]), [200, 200, 200, 200, 201])
        self.assertEqual(codes[49], 422)
        self.assertEqual(len({body["data"]["id"] for _, body in results[44:49]}), 1)
        self.assertEqual(sorted(body["data"]["defect_position_meter"] for _, body in results[:44]),
                         [float(i) for i in range(44)])
        self.assertEqual(self.count(), 45)

    @defer.inlineCallbacks
    def test_image_links_and_model(self):
        """A defect is linked to its model and to the stored image its path names."""
        query(self.svc.dsn, "INSERT INTO ai_models (id, name) VALUES (7, 'yolo')")
        query(self.svc.dsn, "INSERT INTO images (coil_number, kind, filename, path, bytes, width, height, format,"
                            " sha256, captured_at) VALUES ('C77', 'original', 'C77_20250409135914123_original.jpg',"
                            " '/x', 1, 1, 1, 'JPEG', repeat('0', 64), now())")
        code, body = yield post_json(self.svc.url, "/defect/single", defect(
            model_id=7, original_image_path="/var/lib/ccl-images/original/C77_20250409135914123_original.jpg",
            labeled_image_path="C77_20250409135914123_labeled.jpg"))
        self.assertEqual(code, 201, body)
        self.assertEqual((body["data"]["model_id"], body["data"]["labeled_image_id"]), (7, None))
        self.assertIsNotNone(body["data"]["original_image_id"])

    @defer.inlineCallbacks
    def test_event_sent(self):
        """A stored defect is announced with its id, coil, type, severity and position."""
        events = []
        yield self.svc.db.listen("ccl_events", events.append)
        code, body = yield post_json(self.svc.url, "/defect/single", defect(defect_position_meter=42.0))
        yield wait_for(lambda: events)
        self.assertEqual(events[0], {"table": "defect_detections", "id": body["data"]["id"], "coil_number": "C77",
                                     "defect_type": "scratch", "severity": "medium", "confidence_score": 0.7,
                                     "defect_position_meter": 42.0, "camera_id": "top"})


class SingleBadInputTests(Base):
    def test_confidence_above_one(self):
        """A confidence above 1 is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(confidence_score=1.5), 422, "confidence_score")

    def test_confidence_below_zero(self):
        """A confidence below 0 is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(confidence_score=-0.1), 422, "confidence_score")

    def test_confidence_as_text(self):
        """A confidence given as text is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(confidence_score="high"), 422, "confidence_score")

    def test_coil_number_traversal(self):
        """A coil number with a path in it is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(coil_number="../../etc/passwd"), 422, "coil_number")

    def test_missing_defect_type(self):
        """A defect without defect_type is refused with 422 and nothing is stored."""
        body = defect()
        del body["defect_type"]
        return self.assertRefused("/defect/single", body, 422, "defect_type")

    def test_unknown_model(self):
        """An unknown model id is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(model_id=999), 422, "model_id")

    def test_not_json(self):
        """A body that is not JSON is refused with 400 and nothing is stored."""
        return self.assertRefused("/defect/single", None, 400, "JSON", raw=b"{not json")

    def test_bad_event_id(self):
        """An event id that is not a UUID is refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/single", defect(event_id="17"), 422, "event_id")

    @defer.inlineCallbacks
    def test_texts_no_column_can_hold(self):
        """Texts with a NUL or a lone surrogate are refused with 422 naming the field; nothing is stored."""
        # JSON can spell a NUL and a lone surrogate; PostgreSQL text can hold neither.
        for field in ("defect_type", "camera_id", "original_image_path"):
            for bad in ("scr\\u0000atch", "scr\\ud800atch"):  # JSON escapes, as a client sends them
                raw = json.dumps(defect()).encode()
                raw = raw[:-1] + f', "{field}": "{bad}"}}'.encode()  # a repeated key: the last one counts
                code, body = yield post_json(self.svc.url, "/defect/single", None, raw=raw)
                self.assertEqual((code, body["details"][0]["field"]), (422, field), body)
                self.assertIn("surrogate", body["details"][0]["reason"])
        self.assertEqual(self.count(), 0)


class BatchTests(Base):
    @defer.inlineCallbacks
    def test_batch_stored_in_one_go_with_batch_info(self):
        """A batch is stored in one go under its coil number, with its batch_info."""
        items = [{"defect_type": "dent", "confidence_score": i / 1000, "coil_number": "IGNORED",
                  "defect_position_meter": i / 10} for i in range(1000)]
        code, body = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "C88", "defects": items,
                                                                     "batch_info": {"frame": 12}})
        self.assertEqual(code, 201, body)
        self.assertEqual((body["data"]["received"], body["data"]["stored"]), (1000, 1000))
        rows = query(self.svc.dsn, "SELECT count(*), count(DISTINCT coil_number), min(coil_number),"
                                   " sum(needs_review::int), min(batch_info->>'frame') FROM defect_detections")
        self.assertEqual(rows, [(1000, 1, "C88", 500, "12")])

    @defer.inlineCallbacks
    def test_ten_thousand_defects(self):
        """A batch of 10,000 defects is stored whole."""
        items = [{"defect_type": "dent", "confidence_score": 0.9, "event_id": str(uuid.uuid4())} for _ in range(10000)]
        code, body = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "C88", "defects": items})
        self.assertEqual((code, body["data"]["stored"]), (201, 10000))
        self.assertEqual(self.count(), 10000)

    @defer.inlineCallbacks
    def test_stored_event_ids_skipped_in_a_batch(self):
        """Event ids already stored are skipped in a batch and named in the reply."""
        yield post_json(self.svc.url, "/defect/single", defect(event_id=EVENT))
        items = [{"defect_type": "dent", "confidence_score": 0.9, "event_id": EVENT},
                 {"defect_type": "dent", "confidence_score": 0.9}]
        code, body = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "C88", "defects": items})
        self.assertEqual((code, body["data"]["stored"], body["data"]["duplicate_event_ids"]), (201, 1, [EVENT]))
        self.assertEqual(self.count(), 2)

    @defer.inlineCallbacks
    def test_a_batch_sent_again_with_other_times_stores_nothing_more(self):
        """A batch sent again (small: one INSERT; large: COPY) whose defects now carry times of
        another month stores none of them again and names every one as a duplicate."""
        for size in (5, 60):
            events = [str(uuid.uuid4()) for _ in range(size)]
            for detected in ("2025-03-31T23:00:00Z", "2025-04-01T01:00:00Z"):
                items = [{"defect_type": "dent", "confidence_score": 0.9, "event_id": event,
                          "detection_time": detected} for event in events]
                code, body = yield post_json(self.svc.url, "/defect/batch", {"coil_number": "C88", "defects": items})
                self.assertEqual(code, 201, body)
            self.assertEqual((body["data"]["stored"], sorted(body["data"]["duplicate_event_ids"])), (0, sorted(events)))
        self.assertEqual(query(self.svc.dsn, "SELECT count(*), max(detection_time) = '2025-03-31T23:00:00Z'"
                                             " FROM defect_detections"), [(65, True)])

    @defer.inlineCallbacks
    def test_events_for_every_defect_of_a_batch(self):
        """Every defect of a batch is announced, awkward texts intact."""
        events = []
        yield self.svc.db.listen("ccl_events", events.append)
        # Line breaks, tabs, quotes and backslashes in the texts: the events go to PostgreSQL
        # as one text, a payload a line, and must come back whole.
        awkward = 'dent\nline "2"\t\\ 찍힘'
        items = [{"defect_type": awkward if i % 2 else "dent", "confidence_score": 0.9,
                  "defect_position_meter": float(i), "camera_id": "top\r\nbottom"} for i in range(50)]
        yield post_json(self.svc.url, "/defect/batch", {"coil_number": "C88", "defects": items})
        yield wait_for(lambda: len(events) == 50)
        self.assertEqual(sorted(e["defect_position_meter"] for e in events), [float(i) for i in range(50)])
        self.assertEqual({(e["defect_position_meter"] % 2 == 1, e["defect_type"], e["camera_id"]) for e in events},
                         {(False, "dent", "top\r\nbottom"), (True, awkward, "top\r\nbottom")})


class BatchBadInputTests(Base):
    item = {"defect_type": "dent", "confidence_score": 0.9}

    def test_batch_of_10001(self):
        """A batch of 10,001 defects is refused with 413 and nothing is stored."""
        return self.assertRefused("/defect/batch", {"coil_number": "C1", "defects": [self.item] * 10001}, 413, "10000")

    @defer.inlineCallbacks
    def test_one_bad_item_among_999_good_ones(self):
        """One bad item among 999 refuses the batch with 422 naming its index; nothing is stored."""
        items = [self.item] * 999
        items.insert(321, dict(self.item, confidence_score="high"))
        body = yield self.assertRefused("/defect/batch", {"coil_number": "C1", "defects": items}, 422)
        self.assertEqual([problem["index"] for problem in body["details"]], [321])

    def test_bad_coil_number(self):
        """A bad batch coil number is refused with 400 and nothing is stored."""
        return self.assertRefused("/defect/batch", {"coil_number": "A B", "defects": [self.item]}, 400, "coil_number")

    def test_defects_not_a_list(self):
        """Defects that are not a list are refused with 422 and nothing is stored."""
        return self.assertRefused("/defect/batch", {"coil_number": "C1", "defects": "many"}, 422, "defects")

    def test_unknown_model_in_a_batch(self):
        """An unknown model in a batch is refused with 422 naming the item; nothing is stored."""
        return self.assertRefused("/defect/batch", {"coil_number": "C1", "defects": [self.item, dict(self.item, model_id=5)]},
                                  422, '"index": 1')

    @defer.inlineCallbacks
    def test_texts_no_column_can_hold(self):
        """A batch item with a NUL or a lone surrogate refuses the batch with 422; nothing is stored."""
        good = json.dumps({"defect_type": "dent", "confidence_score": 0.9})
        for bad in ('{"defect_type": "de\\u0000nt", "confidence_score": 0.9}',
                    '{"defect_type": "dent", "confidence_score": 0.9, "camera_id": "\\udfff"}'):
            raw = f'{{"coil_number": "C1", "defects": [{good}, {bad}]}}'.encode()
            code, body = yield post_json(self.svc.url, "/defect/batch", None, raw=raw)
            self.assertEqual(code, 422, body)
            self.assertEqual([problem["index"] for problem in body["details"]], [1])
            self.assertIn("surrogate", json.dumps(body))
        self.assertEqual(self.count(), 0)
        raw = f'{{"coil_number": "C1", "defects": [{good}], "batch_info": {{"note\\u0000": 1}}}}'.encode()
        yield self.assertRefused("/defect/batch", None, 422, "batch_info", raw=raw)

    def test_repeated_event_id_inside_the_batch(self):
        """An event id repeated inside a batch is refused with 422 and nothing is stored."""
        items = [dict(self.item, event_id=EVENT), dict(self.item, event_id=EVENT)]
        return self.assertRefused("/defect/batch", {"coil_number": "C1", "defects": items}, 422, "repeats")


class ModelAndReadTests(Base):
    @defer.inlineCallbacks
    def test_model_performance_updates_and_keeps_history(self):
        """Model performance updates the scores given and keeps a history row."""
        query(self.svc.dsn, "INSERT INTO ai_models (id, name, accuracy_score) VALUES (3, 'yolo', 0.5)")
        code, body = yield post_json(self.svc.url, "/model/performance",
                                     {"model_id": 3, "performance_data": {"precision_score": 0.8, "f1_score": 0.7}})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["data"]["accuracy_score"], body["data"]["precision_score"]), (0.5, 0.8))
        code, body = yield post_json(self.svc.url, "/model/performance", {"model_id": 3, "performance_data": {"accuracy_score": 0.9}})
        self.assertEqual(body["data"]["precision_score"], 0.8)
        code, body, _, _ = yield get(self.svc.url, "/model/performance?model_id=3")
        self.assertEqual(code, 200)
        self.assertEqual([h["accuracy_score"] for h in body["data"]["history"]], [0.9, 0.5])
        self.assertEqual(body["data"]["model"]["accuracy_score"], 0.9)

    @defer.inlineCallbacks
    def test_model_performance_refusals(self):
        """Performance for an unknown model is 404, with a score outside 0..1 422."""
        code, body = yield post_json(self.svc.url, "/model/performance", {"model_id": 99, "performance_data": {"f1_score": 0.5}})
        self.assertEqual((code, body["error"]), (404, "no such AI model"))
        query(self.svc.dsn, "INSERT INTO ai_models (id, name) VALUES (3, 'yolo')")
        code, body = yield post_json(self.svc.url, "/model/performance", {"model_id": 3, "performance_data": {"f1_score": 1.1}})
        self.assertEqual(code, 422)
        self.assertEqual(query(self.svc.dsn, "SELECT count(*) FROM ai_model_metrics")[0][0], 0)

    @defer.inlineCallbacks
    def test_stats_and_recent_with_schedule(self):
        """/stats and /defects/recent answer what is stored, with the coil's schedule, within the hours asked."""
        code, body, _, _ = yield get(self.svc.url, "/stats")
        self.assertEqual((code, body["data"]["total"], body["data"]["by_type"], body["data"]["last_defect_time"]),
                         (200, 0, [], None))
        query(self.svc.dsn, "INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,"
                            " customer_name, ccl_bom, raw) VALUES ('CCL1', 1, now(), now(), 'C77', '동국', 'BOM-1', 'x')")
        for confidence, kind in ((0.9, "dent"), (0.5, "dent"), (0.7, "scratch")):
            yield post_json(self.svc.url, "/defect/single", defect(confidence_score=confidence, defect_type=kind))
        yield post_json(self.svc.url, "/defect/single", defect(coil_number="OLD", detection_time="2001-01-01T00:00:00Z"))
        code, body, _, _ = yield get(self.svc.url, "/stats")
        stats = body["data"]
        self.assertEqual(stats["total"], 4)
        self.assertEqual({t["defect_type"]: t["count"] for t in stats["by_type"]}, {"dent": 2, "scratch": 2})
        self.assertAlmostEqual(stats["average_confidence"], 0.7)
        self.assertEqual({c["coil_number"]: c["count"] for c in stats["by_coil"]}, {"C77": 3, "OLD": 1})
        code, body, _, _ = yield get(self.svc.url, "/defects/recent?limit=2&hours=1")
        self.assertEqual(len(body["data"]), 2)
        self.assertEqual({(r["customer_name"], r["ccl_bom"]) for r in body["data"]}, {("동국", "BOM-1")})
        code, body, _, _ = yield get(self.svc.url, "/defects/recent")
        self.assertEqual(body["count"], 3)  # the 2001 defect is older than 24 hours
        code, body, _, _ = yield get(self.svc.url, "/defects/recent?limit=0")
        self.assertEqual(code, 400)

    @defer.inlineCallbacks
    def test_concurrent_stats_requests_share_one_read_and_the_next_reads_afresh(self):
        """Concurrent /stats requests share one read; the next request reads afresh."""
        yield post_json(self.svc.url, "/defect/single", defect())
        shared = self.svc.app.read_stats
        runs = shared.runs
        answers = yield stats_asked_together(self, self.svc, "defect_detections", 5)
        self.assertEqual({code for code, _, _, _ in answers}, {200})
        self.assertEqual({content for _, _, content, _ in answers}, {answers[0][2]})
        self.assertEqual(answers[0][1]["data"]["total"], 1)
        self.assertEqual(shared.runs, runs + 1)
        yield post_json(self.svc.url, "/defect/single", defect())
        code, body, _, _ = yield get(self.svc.url, "/stats")
        self.assertEqual((code, body["data"]["total"], shared.runs), (200, 2, runs + 2))

    @defer.inlineCallbacks
    def test_coils_last_seen_exact_whether_or_not_the_window_holds_enough_coils(self):
        """/stats' latest coils are exact whether or not the recent window holds enough coils."""
        # A has the 5 newest defects, then B (2), then C (1, the oldest of all).
        rows = [("A", 0.9, 10 + i) for i in range(5)] + [("B", 0.5, 5), ("B", 0.3, 4), ("C", 0.1, 1)]
        for coil, confidence, minute in rows:
            query(self.svc.dsn, "INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                                " detection_time) VALUES (%s, 'dent', %s, 'low', '2026-01-01 00:00+00'::timestamptz"
                                " + make_interval(mins => %s))", (coil, confidence, minute))

        def figures(stats):
            return [(c["coil_number"], c["count"], round(c["average_confidence"], 6)) for c in stats["by_coil"]]

        expected = [("A", 5, 0.9), ("B", 2, 0.4)]
        # window 3: only A in it, fewer coils than asked for -> the whole table is grouped
        self.assertEqual(figures((yield defect_stats(self.svc.db, coils=2, window=3))), expected)
        # window 6: A and B in it -> exactly the coils asked for, figures over ALL their defects
        self.assertEqual(figures((yield defect_stats(self.svc.db, coils=2, window=6))), expected)
        # a window larger than the table
        self.assertEqual(figures((yield defect_stats(self.svc.db, coils=5, window=100))),
                         expected + [("C", 1, 0.1)])
        stats = yield defect_stats(self.svc.db)
        self.assertEqual((stats["total"], stats["by_severity"], stats["needs_review"]), (8, {"low": 8}, 0))
        self.assertAlmostEqual(stats["average_confidence"], (4.5 + 0.8 + 0.1) / 8)
        self.assertEqual(datetime.fromisoformat(stats["last_defect_time"]),
                         datetime(2026, 1, 1, 0, 14, tzinfo=timezone.utc))

    @defer.inlineCallbacks
    def test_health_and_metrics(self):
        """/health says ok and /metrics counts the defects stored."""
        yield self.svc.jobs[0][1]()
        code, body, _, _ = yield get(self.svc.url, "/health")
        self.assertEqual((code, body["status"]), (200, "ok"))
        yield post_json(self.svc.url, "/defect/single", defect())
        code, _, raw, _ = yield get(self.svc.url, "/metrics")
        self.assertIn(b'ccl_ingest_defects_total{path="single"} 1', raw)


class EventTextTests(TestCase):
    def test_event_text_is_the_json_of_the_defect(self):
        """A defect's event text is its JSON, awkward texts intact, missing values null."""
        defect = validate_defect({"coil_number": "C-1", "defect_type": '스크래치 "x"\n', "confidence_score": 0.25,
                                  "defect_position_meter": 12.5, "camera_id": "top"}, Thresholds(), now=DETECTED_AT)
        self.assertEqual(json.loads(event_text(7, defect)), {
            "table": "defect_detections", "id": 7, "coil_number": "C-1", "defect_type": '스크래치 "x"\n',
            "severity": "low", "confidence_score": 0.25, "defect_position_meter": 12.5, "camera_id": "top"})
        self.assertIsNone(json.loads(event_text(8, attrs.evolve(defect, defect_position_meter=None)))["defect_position_meter"])


class BodyLimitTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_chunked_body_over_the_limit_is_refused_while_streaming(self):
        """A chunked body over the limit is refused with 413 while it streams."""
        import socket

        from twisted.internet import threads

        svc = yield start_service(self, "defects", env={"CCL_DEFECTS_MAX_BODY_MB": "1"})
        port = int(svc.url.rsplit(":", 1)[1])

        def exchange():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /defect/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"x" * 65536
                reply = b""
                try:
                    for _ in range(40):  # 2.5 MB, no Content-Length to refuse early
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    pass
                sock.settimeout(5)
                try:
                    while not (b"\r\n\r\n" in reply and reply.rstrip().endswith(b"}")):
                        data = sock.recv(4096)
                        if not data:
                            break
                        reply += data
                except OSError:
                    pass
                return reply

        reply = yield threads.deferToThread(exchange)
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        self.assertEqual(json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"], "request too large")
        self.assertEqual(query(svc.dsn, "SELECT count(*) FROM defect_detections")[0][0], 0)
        code, _ = yield post_json(svc.url, "/defect/single", defect())
        self.assertEqual(code, 201)
