"""Accuracy from reviews: precision per AI model and defect type on the AI 모델 page and
``/api/models/accuracy``, and the training export of reviewed images (a zip with a manifest),
over real HTTP against a real PostgreSQL and real image files."""

from __future__ import annotations

import csv
import datetime
import io
import json
import zipfile

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ccl.domain.review_accuracy import ALL_TYPES, precision_table
from tests.support.ui import json_of
from tests.test_coil_report import line
from tests.test_ui_data_pages import NOW


def run(coroutine_function):
    def test(self):
        return defer.ensureDeferred(coroutine_function(self))

    test.__name__, test.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return test


class PrecisionTableTests(SynchronousTestCase):
    def test_precision_counts_reclassified_away_and_withholds_below_the_minimum(self):
        """precision = confirmed / (confirmed + FP + reclassified); below the minimum it is withheld; a total per model."""
        table = precision_table([
            {"model_id": 1, "model": "m v1", "defect_type": "scratch", "confirmed": 18, "false_positive": 1,
             "reclassified": 1},
            {"model_id": 1, "model": "m v1", "defect_type": "dent", "confirmed": 2, "false_positive": 0,
             "reclassified": 0}], min_reviews=20)
        self.assertEqual([(p.defect_type, p.reviews, p.precision) for p in table],
                         [(ALL_TYPES, 22, 20 / 22), ("scratch", 20, 0.9), ("dent", 2, None)])
        self.assertTrue(table[2].too_few)


def seed_reviews(sql, seeded) -> dict:
    """Reviewed defects of two models: v7 scratch 18 confirmed + 1 FP + 1 reclassified to dent (the
    first four with the image pair), v7 dent 2 confirmed, v8 stain 5 false positives; one unreviewed."""
    v7, v8 = seeded["models"]["deployed"], seeded["models"]["other"]
    images = seeded["images"]

    def add(model, kind, status, final, n, reviewed_days_ago=1, with_image=False):
        return [row[0] for row in sql(
            """INSERT INTO defect_detections (coil_number, defect_type, original_defect_type, confidence_score,
                   severity, detection_time, model_id, review_status, reviewed_by, reviewed_at, original_image_id,
                   labeled_image_id, defect_position_x, defect_position_y, defect_size_width, defect_size_height)
               SELECT 'C26A0003', %s, %s, 0.9, 'high', %s - interval '3 days', %s, %s, 'op.lee',
                      %s - make_interval(days => %s), %s, %s, 120, 200, 90, 40 FROM generate_series(1, %s)
               RETURNING id""",
            (final, kind if final != kind else None, NOW, model, status, NOW, reviewed_days_ago,
             images["original"] if with_image else None, images["labeled"] if with_image else None, n))]

    ids = {"with_image": add(v7, "scratch", "confirmed", "scratch", 2, with_image=True)
           + add(v7, "scratch", "false_positive", "scratch", 1, with_image=True)
           + add(v7, "scratch", "reclassified", "dent", 1, with_image=True)}
    add(v7, "scratch", "confirmed", "scratch", 16, reviewed_days_ago=40)
    add(v7, "dent", "confirmed", "dent", 2)
    add(v8, "stain", "false_positive", "stain", 5)
    return ids


class AccuracyTests(TestCase):
    @run
    async def test_figures_per_model_and_type_with_too_few_reviews(self):
        """The API gives counts and precision per model and type; the page shows them, 'too few' below 20."""
        ui, seeded, _, viewer = await line(self)
        seed_reviews(ui.sql, seeded)
        response, body = await ui.get("/api/models/accuracy", viewer)
        self.assertEqual(response.code, 200)
        found = json_of(body)
        self.assertEqual(found["min_reviews"], 20)
        rows = {(f["model"], f["defect_type"]): f for f in found["figures"]}
        scratch = rows[("yolo-ccl v7", "scratch")]
        self.assertEqual((scratch["confirmed"], scratch["false_positive"], scratch["reclassified"], scratch["reviews"]),
                         (18, 1, 1, 20))
        self.assertAlmostEqual(scratch["precision"], 0.9)
        self.assertEqual((rows[("yolo-ccl v7", "dent")]["precision"], rows[("yolo-ccl v7", "dent")]["too_few"]),
                         (None, True))
        self.assertEqual(rows[("yolo-ccl v8", "stain")]["false_positive"], 5)
        _, page = await ui.get("/models", viewer)
        self.assertIn("90.0 %".encode(), page)
        self.assertIn("검토 부족".encode(), page)
        self.assertNotIn(b'id="training-export"', page)  # the export is for operators and admins

    @run
    async def test_filters_by_period_model_and_type(self):
        """From/to (plant days), model and type narrow the figures; a bad filter is 400 with the reason."""
        ui, seeded, _, viewer = await line(self)
        seed_reviews(ui.sql, seeded)
        day = (NOW - datetime.timedelta(days=7)).date().isoformat()
        _, body = await ui.get(f"/api/models/accuracy?from={day}&model={seeded['models']['deployed']}&type=scratch",
                               viewer)
        figures = json_of(body)["figures"]
        self.assertEqual([(f["defect_type"], f["reviews"]) for f in figures], [(ALL_TYPES, 4), ("scratch", 4)])
        for bad in ("model=abc", "from=2026-13-01", "from=2026-11-20&to=2026-11-01"):
            response, body = await ui.get(f"/api/models/accuracy?{bad}", viewer)
            self.assertEqual(response.code, 400, bad)
            self.assertIn("error", json_of(body))


class TrainingExportTests(TestCase):
    @run
    async def test_zip_holds_our_named_images_and_a_manifest_and_is_audited(self):
        """An operator's export: images under names of ours, the manifest (CSV with BOM and JSON) with final and
        original labels, model, coil, reviewer; audited as training.export with the count."""
        ui, seeded, images, _ = await line(self)
        ids = seed_reviews(ui.sql, seeded)
        operator = ui.add_user("op.kim", "operator")
        day = (NOW - datetime.timedelta(days=7)).date().isoformat()
        response, body = await ui.get(f"/models/training-export.zip?from={day}&type=scratch", operator)
        self.assertEqual(response.code, 200, body[:300])
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/zip"])
        self.assertEqual(response.original.length, len(body))  # sent with its Content-Length, not chunked
        archive = zipfile.ZipFile(io.BytesIO(body))
        self.assertIsNone(archive.testzip())
        manifest = json.loads(archive.read("manifest.json"))
        rows = {row["defect_id"]: row for row in manifest["rows"]}
        self.assertEqual(sorted(rows), sorted(ids["with_image"]))
        reclassified = rows[ids["with_image"][3]]
        self.assertEqual((reclassified["final_label"], reclassified["original_label"], reclassified["outcome"]),
                         ("dent", "scratch", "reclassified"))
        self.assertEqual(rows[ids["with_image"][2]]["final_label"], "")  # a false positive has no defect
        first = rows[ids["with_image"][0]]
        self.assertEqual((first["model"], first["model_version"], first["coil"], first["reviewer"], first["box_w"]),
                         ("yolo-ccl", "v7", "C26A0003", "op.lee", 90))
        self.assertEqual(first["image_file"], f"images/{ids['with_image'][0]:010d}_scratch.jpg")
        self.assertEqual(reclassified["labeled_file"], f"labeled/{ids['with_image'][3]:010d}_dent.jpg")
        original = next((images / "original").iterdir()).read_bytes()
        self.assertEqual(archive.read(first["image_file"]), original)
        text = archive.read("manifest.csv")
        self.assertTrue(text.startswith(b"\xef\xbb\xbf"))
        table = list(csv.DictReader(io.StringIO(text[3:].decode("utf-8"))))
        self.assertEqual(len(table), 4)
        self.assertTrue(all(not name.startswith("/") and ".." not in name for name in archive.namelist()))
        [(actor, details)] = ui.sql("SELECT actor, details FROM audit_logs WHERE action = 'training.export'")
        self.assertEqual((actor, details["images"], details["defect_type"]), ("op.kim", 4, "scratch"))

    @run
    async def test_empty_export_is_a_valid_zip_with_an_empty_manifest(self):
        """No reviewed image in the period: a valid zip with the manifest's header only."""
        ui, _, _, _ = await line(self)
        admin = ui.add_user("admin.park", "admin")
        response, body = await ui.get("/models/training-export.zip", admin)
        self.assertEqual(response.code, 200)
        archive = zipfile.ZipFile(io.BytesIO(body))
        self.assertEqual(sorted(archive.namelist()), ["manifest.csv", "manifest.json"])
        self.assertEqual(json.loads(archive.read("manifest.json"))["rows"], [])
