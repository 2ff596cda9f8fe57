"""The fast lane of batch validation and the COPY/event text builder agree with the general paths."""

import copy
import json
import random
from datetime import datetime, timezone

import psycopg2
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ccl.adapters.storage import defect_store
from ccl.domain.ingest.defects import InvalidBatch, Thresholds, validate_batch
from ccl.domain.ingest.defects_fast import ROW_FIELDS, defect_row, fast_batch_rows
from tests.support.database import fresh_database

NOW = datetime(2025, 4, 9, 4, 59, 14, tzinfo=timezone.utc)
T = Thresholds(critical=0.9, high=0.8, medium=0.5, review=0.55)
FULL = {"defect_type": "scratch", "confidence_score": 0.91, "defect_position_x": 10, "defect_position_y": 20,
        "defect_size_width": 5, "defect_size_height": 6, "defect_position_meter": 12.5,
        "detection_time": "2025-04-09T13:59:14+09:00", "original_image_path": "/x/C1_o.jpg",
        "labeled_image_path": "/x/C1_l.jpg", "model_id": 3, "camera_id": "bottom",
        "event_id": "123e4567-e89b-12d3-a456-426614174000", "severity": "low", "coil_number": "IGNORED"}
#: Values of every kind, good and bad, that mutations put into fields.
VALUES = [None, 0, 1, -1, 0.0, 1.0, 0.5, 1.5, -0.1, 12.0, 12.5, 2**31 - 1, 2**31, 2**70, True, False, "", " ", "x",
          "0.7", "a" * 50, "a" * 51, "p" * 255, "p" * 256, "tab\there", "back\\slash", "new\nline", "2025-04-09",
          "2025-04-09T13:59:14", "2025-04-09T13:59:14Z", "not a time", "123E4567-E89B-12D3-A456-426614174000",
          "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-426614174001", "critical", "HIGH",
          float("nan"), float("inf"), [], {}, ["x"], {"a": 1}]
FIELDS = list(FULL) + ["unknown_field"]


def general(items, maximum=10000):
    return [defect_row(d) for d in validate_batch(items, T, now=NOW, coil_number="C1", maximum=maximum)]


def mutated_batches(rng, count):
    base = [FULL, {"defect_type": "dent", "confidence_score": 0.3}, {"defect_type": "stain", "confidence_score": 1}]
    for _ in range(count):
        items = [copy.deepcopy(rng.choice(base)) for _ in range(rng.randrange(1, 5))]
        for item in items:
            if "event_id" in item:
                item["event_id"] = item["event_id"][:-3] + f"{rng.randrange(4096):03x}"
        for _ in range(rng.randrange(0, 3)):
            item = rng.choice(items)
            field = rng.choice(FIELDS)
            if rng.random() < 0.15:
                item.pop(field, None)
            else:
                item[field] = rng.choice(VALUES)
        if rng.random() < 0.05:
            items[rng.randrange(len(items))] = rng.choice(VALUES)
        yield items


class FastLaneTests(SynchronousTestCase):
    def test_same_rows_or_a_fallback_on_many_mutated_batches(self):
        """On thousands of mutated batches the fast lane gives the rules' rows or falls back, never more lenient."""
        rng = random.Random(5)
        fast_taken = fallback_accepted = refused = 0
        for items in mutated_batches(rng, 4000):
            fast = fast_batch_rows(items, T, now=NOW, coil_number="C1", maximum=10000)
            try:
                rows = general(items)
            except InvalidBatch:
                self.assertIsNone(fast, items)  # never more lenient than the rules
                refused += 1
                continue
            if fast is None:
                fallback_accepted += 1
            else:
                self.assertEqual(fast, rows, items)
                self.assertEqual([[type(v) for v in r] for r in fast], [[type(v) for v in r] for r in rows])
                fast_taken += 1
        # Each outcome happens often, so the comparison above really ran.
        self.assertGreater(fast_taken, 400)
        self.assertGreater(fallback_accepted, 30)
        self.assertGreater(refused, 400)

    def test_plain_batch_takes_the_fast_lane_with_derived_severity(self):
        """A plain batch takes the fast lane, severity and needs_review derived from the confidence."""
        items = [{"defect_type": "d", "confidence_score": c} for c in (0.95, 0.85, 0.6, 0.1)]
        rows = fast_batch_rows(items, T, now=NOW, coil_number="C1", maximum=4)
        self.assertEqual([(r[ROW_FIELDS.index("severity")], r[ROW_FIELDS.index("needs_review")]) for r in rows],
                         [("critical", False), ("high", False), ("medium", False), ("low", True)])
        self.assertEqual(rows, general(items))

    def test_fallback_cases(self):
        """Repeated or unnormalised event ids, pixel positions, a non-list and too many items fall back to the rules."""
        event = FULL["event_id"]
        for items in ([dict(FULL), dict(FULL)],  # repeated event_id: the rules explain it
                      [dict(FULL, event_id=event.upper())],  # normalised by the rules
                      [dict(FULL, defect_position_x=12.0)],
                      {"not": "a list"}):
            self.assertIsNone(fast_batch_rows(items, T, now=NOW, coil_number="C1", maximum=10), items)
        self.assertIsNone(fast_batch_rows([{"defect_type": "d", "confidence_score": 0.1}] * 3, T, now=NOW,
                                          coil_number="C1", maximum=2))


class CopyTextTests(TestCase):
    """copy_and_events over real PostgreSQL: what COPY stores equals the rows, texts escaped."""

    timeout = 60

    def test_copy_and_events_store_tricky_texts_exactly(self):
        """Tabs, backslashes, newlines and quotes in defect texts are stored and announced exactly by the COPY path."""
        dsn = fresh_database(self)
        connection = psycopg2.connect(dsn)
        self.addCleanup(connection.close)
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO ai_models (id, name) VALUES (3, 'm')")
        connection.commit()
        rng = random.Random(9)
        texts = ["plain", "tab\there", "back\\slash\\N", "new\nline\r", "따옴표 \"q\"", "\\", "end\\"]
        items = []
        for i in range(defect_store.SMALL + 50):  # over SMALL: the COPY path
            items.append({"defect_type": rng.choice(texts)[:50], "confidence_score": rng.choice([0, 1, 0.5, 1e-05]),
                          "defect_position_x": rng.choice([None, 0, 2**31 - 1]),
                          "defect_position_meter": rng.choice([None, 0, 3000.25]),
                          "original_image_path": rng.choice([None] + texts), "labeled_image_path": rng.choice(texts),
                          "camera_id": rng.choice([None] + texts), "model_id": rng.choice([None, 3]),
                          "detection_time": rng.choice([None, "2025-04-09T13:59:14.123456", "2025-04-09T00:00:00Z"])})
        rows = general(items)
        info = {"frame": "tab\t\\ \n", "n": 1}
        result = defect_store.store_batch(connection, rows, info)
        connection.commit()
        self.assertEqual(result.stored, len(rows))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(ROW_FIELDS)}, batch_info FROM defect_detections ORDER BY id")
            stored = cursor.fetchall()
        self.assertEqual([tuple(s[:-1]) for s in stored], rows)
        self.assertEqual({json.dumps(s[-1], sort_keys=True) for s in stored}, {json.dumps(info, sort_keys=True)})
        _, events = defect_store.copy_and_events(result.ids, rows, None, None)
        for row_id, row, text in zip(result.ids, rows, events):
            self.assertEqual(json.loads(text), json.loads(defect_store.event_text(row_id, general_defect(row))))


def general_defect(row):
    from ccl.domain.ingest.defects import Defect

    return Defect(**dict(zip(ROW_FIELDS, row)))


class ParseJsonTests(SynchronousTestCase):
    """parse_json (orjson, then the json module for what orjson refuses) decodes as json.loads does."""

    def test_same_result_or_same_refusal_as_the_json_module(self):
        """parse_json answers what json.loads answers, or refuses with 400 and the same reason."""
        from ccl.adapters.web.errors import HTTPError
        from ccl.adapters.web.ingest.common import parse_json

        samples = [b'{"a": 1, "a": 2}', b'[1.5, -0.0, 1e-05, 1E400, 12345678901234567890123]', b'{"x": NaN}',
                   b'[Infinity, -Infinity]', b'"\\ud800"', '"따옴표 \\u00e9"'.encode(), b'  [] ', b"{}",
                   b'{"a": [true, false, null]}', b"", b"{", b"[1,]", b"\xff\xfe", b'{"a" 1}', b"nul",
                   b'"tab\tin string"', b"1 2", json.dumps({"defects": [FULL] * 3}).encode()]
        for raw in samples:
            try:
                expected = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as error:
                refusal = self.assertRaises(HTTPError, parse_json, raw)
                self.assertEqual((refusal.status, refusal.details), (400, str(error)), raw)
                continue
            got = parse_json(raw)
            self.assertEqual(json.dumps(got), json.dumps(expected), raw)
