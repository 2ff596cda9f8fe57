"""The ingestion rules with plain values: coil numbers, defects, severity, names, retention."""

from datetime import datetime, timedelta, timezone

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.defects import (
    InvalidBatch,
    InvalidDefect,
    Thresholds,
    validate_batch,
    validate_defect,
    validate_performance,
)
from ccl.domain.ingest.images import image_filename, is_stored_name, name_from_path, next_stamp_ms
from ccl.domain.ingest.retention import Candidate, Policy, Usage, plan
from ccl.domain.ingest.times import file_stamp, parse_timestamp
from ccl.domain.ingest.tokens import bearer_token, check_token_name, new_token, token_digest
from ccl.domain.ingest.uploads import InvalidUpload, check_file_fields, validate_fields

NOW = datetime(2025, 4, 9, 4, 59, 14, 123456, tzinfo=timezone.utc)
T = Thresholds()


def fields_of(error):
    return [e["field"] for e in error.errors]


class CoilNumberTests(SynchronousTestCase):
    def test_accepted(self):
        """Coil numbers of 1-20 letters, digits and dashes are accepted as they are."""
        for coil in ("A", "C123-45", "a" * 20, "2025-0409-X"):
            self.assertEqual(check_coil_number(coil), coil)

    def test_refused(self):
        """Coil numbers empty, not text, too long, or with paths, spaces, underscores, Korean or newlines are refused."""
        for coil in ("", None, "../../etc/passwd", "A B", "a" * 21, "C1_2", "C1/2", "코일", "C1\n", 12):
            self.assertRaises(InvalidCoilNumber, check_coil_number, coil)

    def test_length_reason_names_the_count(self):
        """The refusal of a too long coil number names its length."""
        self.assertIn("21", str(self.assertRaises(InvalidCoilNumber, check_coil_number, "a" * 21)))


class DefectTests(SynchronousTestCase):
    def good(self, **extra):
        return {"coil_number": "C1", "defect_type": "scratch", "confidence_score": 0.7, **extra}

    def test_minimal_defect_gets_defaults(self):
        """A minimal defect gets camera 'top', detection time now, and a severity from its confidence."""
        defect = validate_defect(self.good(), T, now=NOW)
        self.assertEqual((defect.coil_number, defect.camera_id, defect.detection_time), ("C1", "top", NOW))
        self.assertEqual(defect.severity, "medium")
        self.assertFalse(defect.needs_review)

    def test_confidence_zero_is_valid_and_flagged_for_review(self):
        """Confidence 0 is valid: severity low, flagged for review."""
        defect = validate_defect(self.good(confidence_score=0), T, now=NOW)
        self.assertEqual((defect.confidence_score, defect.severity, defect.needs_review), (0.0, "low", True))

    def test_bad_confidences(self):
        """A confidence outside 0..1, not a number, or NaN is refused naming the field."""
        for value in (1.5, -0.1, "high", None, True, float("nan")):
            error = self.assertRaises(InvalidDefect, validate_defect, self.good(confidence_score=value), T, now=NOW)
            self.assertEqual(fields_of(error), ["confidence_score"])

    def test_severity_from_thresholds(self):
        """Severity follows the thresholds (bounds inclusive); below the review threshold a defect needs review."""
        thresholds = Thresholds(critical=0.9, high=0.8, medium=0.5, review=0.3)
        cases = {0.95: "critical", 0.9: "critical", 0.85: "high", 0.5: "medium", 0.49: "low"}
        for confidence, severity in cases.items():
            self.assertEqual(thresholds.severity(confidence), severity)
        self.assertTrue(thresholds.needs_review(0.29))
        self.assertFalse(thresholds.needs_review(0.3))

    def test_sent_severity_is_kept(self):
        """A severity sent by the box is kept; an unknown one is refused."""
        self.assertEqual(validate_defect(self.good(severity="critical"), T, now=NOW).severity, "critical")
        self.assertRaises(InvalidDefect, validate_defect, self.good(severity="awful"), T, now=NOW)

    def test_thresholds_from_settings_keep_defaults_for_broken_values(self):
        """Thresholds read from settings keep the defaults for broken values."""
        thresholds = Thresholds.from_settings({"critical": 0.99, "high": "x"}, 2)
        self.assertEqual((thresholds.critical, thresholds.high, thresholds.review), (0.99, 0.85, 0.5))

    def test_every_problem_is_reported(self):
        """Every problem of a defect is reported at once, field by field."""
        error = self.assertRaises(InvalidDefect, validate_defect,
                                  {"coil_number": "A B", "defect_type": "x" * 51, "confidence_score": 2,
                                   "defect_position_x": -1, "defect_size_width": 1.5, "defect_position_meter": -3,
                                   "detection_time": "yesterday", "model_id": "one", "event_id": "nope"},
                                  T, now=NOW)
        self.assertEqual(sorted(fields_of(error)), sorted([
            "coil_number", "defect_type", "confidence_score", "defect_position_x", "defect_size_width",
            "defect_position_meter", "detection_time", "model_id", "event_id"]))

    def test_optional_fields(self):
        """Optional fields are taken; a detection time without offset is plant time; event ids are lower-cased."""
        defect = validate_defect(self.good(defect_position_x=10, defect_position_y=20.0, defect_size_width=3,
                                           defect_size_height=4, defect_position_meter=12.5,
                                           detection_time="2025-04-09T13:59:14", model_id=2, camera_id="bottom",
                                           event_id="123E4567-E89B-12D3-A456-426614174000"), T, now=NOW)
        self.assertEqual(defect.defect_position_y, 20)
        self.assertEqual(defect.detection_time, datetime(2025, 4, 9, 4, 59, 14, tzinfo=timezone.utc))
        self.assertEqual(defect.event_id, "123e4567-e89b-12d3-a456-426614174000")

    def test_not_an_object(self):
        """A defect that is not a JSON object is refused."""
        self.assertRaises(InvalidDefect, validate_defect, ["x"], T, now=NOW)


class BatchTests(SynchronousTestCase):
    item = {"defect_type": "dent", "confidence_score": 0.9}

    def test_top_level_coil_applies_to_every_item(self):
        """A batch's coil number applies to every item."""
        defects = validate_batch([dict(self.item, coil_number="OTHER")] * 3, T, now=NOW, coil_number="C9", maximum=10)
        self.assertEqual({d.coil_number for d in defects}, {"C9"})

    def test_one_bad_item_refuses_the_batch_with_its_index(self):
        """One bad item refuses the whole batch, naming its index."""
        items = [self.item] * 999
        items.insert(500, dict(self.item, confidence_score=1.5))
        error = self.assertRaises(InvalidBatch, validate_batch, items, T, now=NOW, coil_number="C9", maximum=10000)
        self.assertEqual(error.kind, "items")
        self.assertEqual([p["index"] for p in error.details], [500])

    def test_too_many(self):
        """A batch over the maximum is refused as too large."""
        error = self.assertRaises(InvalidBatch, validate_batch, [self.item] * 11, T, now=NOW, coil_number="C", maximum=10)
        self.assertEqual(error.kind, "size")

    def test_repeated_event_id_inside_a_batch(self):
        """An event id repeated inside a batch is refused at its second index."""
        event = "123e4567-e89b-12d3-a456-426614174000"
        error = self.assertRaises(InvalidBatch, validate_batch, [dict(self.item, event_id=event)] * 2, T, now=NOW,
                                  coil_number="C", maximum=10)
        self.assertEqual(error.details[0]["index"], 1)

    def test_bad_coil_and_not_a_list(self):
        """A bad batch coil number, or defects that are not a list, is refused."""
        self.assertEqual(self.assertRaises(InvalidBatch, validate_batch, [], T, now=NOW, coil_number="../x",
                                           maximum=10).kind, "coil_number")
        self.assertEqual(self.assertRaises(InvalidBatch, validate_batch, {}, T, now=NOW, coil_number="C",
                                           maximum=10).kind, "defects")


class PerformanceTests(SynchronousTestCase):
    def test_partial_scores(self):
        """Model performance may give some scores only."""
        model_id, scores = validate_performance({"model_id": 3, "performance_data": {"f1_score": 0.8}})
        self.assertEqual((model_id, scores.f1_score, scores.accuracy_score), (3, 0.8, None))

    def test_refused(self):
        """Performance without a model, without scores or with scores outside 0..1 is refused."""
        for body in ({"model_id": 3, "performance_data": {"f1_score": 1.2}}, {"performance_data": {"f1_score": 0.1}},
                     {"model_id": 3, "performance_data": {}}, [], {"model_id": 3}):
            self.assertRaises(InvalidDefect, validate_performance, body)


class ImageNameTests(SynchronousTestCase):
    def test_name_and_stamp(self):
        """Image names are <coil>_<plant-time stamp to the ms>_<kind>.<ext>."""
        stamp = file_stamp(NOW)
        self.assertEqual(stamp, "20250409135914123")  # plant time (UTC+9)
        self.assertEqual(image_filename("C1", stamp, "original", "jpg"), "C1_20250409135914123_original.jpg")

    def test_stored_names_only(self):
        """Only names the service makes for that kind are stored names: no paths, no other kinds or formats."""
        self.assertTrue(is_stored_name("original", "C1_20250409135914123_original.jpg"))
        for name in ("../../etc/passwd", "..%2fetc", "C1_20250409135914123_labeled.jpg", "a/C1_20250409135914123_original.jpg",
                     "C1_2025040913591412_original.jpg", "C1_20250409135914123_original.gif", ".."):
            self.assertFalse(is_stored_name("original", name), name)

    def test_next_stamp_never_repeats(self):
        """A coil's next stamp is now, or one ms after its last, never the same."""
        self.assertEqual(next_stamp_ms(100, None), 100)
        self.assertEqual(next_stamp_ms(100, 100), 101)
        self.assertEqual(next_stamp_ms(100, 150), 151)
        self.assertEqual(next_stamp_ms(200, 150), 200)

    def test_name_from_path(self):
        """The file name is taken from a Unix or Windows path a box sends."""
        self.assertEqual(name_from_path("/var/lib/ccl-images/original/x.jpg"), "x.jpg")
        self.assertEqual(name_from_path("C:\\img\\x.jpg"), "x.jpg")
        self.assertIsNone(name_from_path(""))

    def test_timestamps(self):
        """ISO timestamps are parsed; anything else is refused."""
        self.assertEqual(parse_timestamp("2025-04-09T13:59:14Z"), datetime(2025, 4, 9, 13, 59, 14, tzinfo=timezone.utc))
        self.assertRaises(ValueError, parse_timestamp, "9 April")


class UploadFieldTests(SynchronousTestCase):
    def test_defaults(self):
        """An upload with only a coil number gets captured_at now, camera 'top', no defects."""
        fields = validate_fields({"coil_number": "C1"}, T, now=NOW)
        self.assertEqual((fields.captured_at, fields.camera_id, fields.defects), (NOW, "top", []))

    def test_defect_data_object_array_and_wrapper(self):
        """defect_data may be one object, an array, or {"defects": [...]}."""
        one = '{"defect_type": "dent", "confidence_score": 0.9}'
        self.assertEqual(len(validate_fields({"coil_number": "C1", "defect_data": one}, T, now=NOW).defects), 1)
        self.assertEqual(len(validate_fields({"coil_number": "C1", "defect_data": f"[{one},{one}]"}, T, now=NOW).defects), 2)
        wrapped = f'{{"defects": [{one}]}}'
        self.assertEqual(len(validate_fields({"coil_number": "C1", "defect_data": wrapped}, T, now=NOW).defects), 1)

    def test_refusals(self):
        """Bad upload fields are refused with 400, an invalid defect with 422."""
        cases = [({"coil_number": "A B"}, 400), ({}, 400), ({"coil_number": "C", "defect_data": "{nope"}, 400),
                 ({"coil_number": "C", "defect_data": '"text"'}, 400), ({"coil_number": "C", "captured_at": "x"}, 400),
                 ({"coil_number": "C", "defect_data": '[{"defect_type": "d", "confidence_score": 5}]'}, 422)]
        for texts, status in cases:
            self.assertEqual(self.assertRaises(InvalidUpload, validate_fields, texts, T, now=NOW).status, status)

    def test_file_fields(self):
        """An upload needs exactly original_image and labeled_image."""
        check_file_fields(["labeled_image", "original_image"])
        for names in (["original_image"], ["original_image", "labeled_image", "labeled_image"], ["x", "original_image"]):
            self.assertRaises(InvalidUpload, check_file_fields, names)


class TokenTests(SynchronousTestCase):
    def test_tokens(self):
        """Tokens are random, stored as a 32-byte digest, and read from a Bearer header only."""
        token = new_token()
        self.assertNotEqual(token, new_token())
        self.assertEqual(len(token_digest(token)), 32)
        self.assertEqual(bearer_token(f"Bearer {token}"), token)
        self.assertIsNone(bearer_token("Basic abc"))
        self.assertIsNone(bearer_token(None))
        self.assertRaises(ValueError, check_token_name, "a b")


class RetentionPlanTests(SynchronousTestCase):
    def candidates(self, n, size=10, start=None):
        start = start or NOW - timedelta(days=100)
        return [Candidate(i, size, start + timedelta(days=i)) for i in range(n)]

    def test_age_limit(self):
        """Images older than the age limit are planned for deletion, oldest first."""
        chosen = plan(self.candidates(100), Usage(1000, 10, 1000), Policy(max_age_days=30), NOW)
        self.assertEqual([p.candidate.id for p in chosen], list(range(70)))
        self.assertEqual({p.reason for p in chosen}, {"age"})

    def test_disk_watermark_deletes_oldest_until_low(self):
        """Over the disk's high watermark, the oldest go until usage is under the low one."""
        chosen = plan(self.candidates(50), Usage(disk_total=1000, disk_used=950, store_bytes=500),
                      Policy(high_percent=90, low_percent=85), NOW)
        # 950 -> at most 850 used: 10 files of 10 bytes.
        self.assertEqual([p.candidate.id for p in chosen], list(range(10)))
        self.assertEqual({p.reason for p in chosen}, {"disk"})

    def test_under_the_watermark_nothing(self):
        """Under the watermarks nothing is deleted."""
        self.assertEqual(plan(self.candidates(5), Usage(1000, 800, 50), Policy(), NOW), [])

    def test_store_limit(self):
        """Over the store limit, the oldest go until the store is under its low share."""
        chosen = plan(self.candidates(10, size=100), Usage(10**9, 10, 1000),
                      Policy(max_store_bytes=900, high_percent=90, low_percent=80), NOW)
        # until store <= 900 * 80 / 90 = 800
        self.assertEqual(len(chosen), 2)

