"""ccl-images over real HTTP with real PostgreSQL and real files in a temp image root."""

import hashlib
import json
import re
import socket
import struct
import zlib
from datetime import datetime
from pathlib import Path

import treq
from PIL import Image
from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from tests.support import ingest
from tests.support.database import query
from tests.support.ingest import (get, image_bytes, multipart, pair_parts, post_json, post_parts, start_service,
                                  stats_asked_together, wait_for)

NAME = re.compile(r"^C123-45_\d{17}_(original|labeled)\.(jpg|png|bmp)$")


def png_bomb(side=20000) -> bytes:
    """A real decompression bomb: a small file that decodes to side x side pixels (1 bit each)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * (side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row * 500) for _ in range(side // 500)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


class Base(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.svc = yield start_service(self, "images")

    def rows(self, table="images"):
        return query(self.svc.dsn, f"SELECT count(*) FROM {table}")[0][0]

    @defer.inlineCallbacks
    def assertRefused(self, parts, status, fragment=""):
        code, body = yield post_parts(self.svc.url, parts)
        self.assertEqual(code, status, body)
        self.assertIsInstance(body, dict)
        self.assertIn(fragment, json.dumps(body))
        self.assertTrue(body["error"])
        yield self.assertNothingWritten()
        return body

    @defer.inlineCallbacks
    def assertNothingWritten(self):
        # The temp names of a refused request are removed in a thread after the reply.
        yield threads.deferToThread(lambda: None)
        self.assertEqual(self.svc.files(), [])
        self.assertEqual((self.rows(), self.rows("defect_detections")), (0, 0))
        # ...and the next request is served.
        code, body = yield post_parts(self.svc.url, pair_parts())
        self.assertEqual(code, 201, body)


class UploadTests(Base):
    @defer.inlineCallbacks
    def test_pair_stored_byte_for_byte_with_metadata_and_thumbnails(self):
        """A pair is stored byte for byte with its metadata, rows and thumbnails, and the reply names the files."""
        original, labeled = image_bytes("JPEG", (300, 200)), image_bytes("BMP", (300, 200))
        code, body = yield post_parts(self.svc.url, pair_parts(original=original, labeled=labeled,
                                                               captured_at="2025-04-09T13:59:14+09:00",
                                                               camera_id="bottom"))
        self.assertEqual(code, 201, body)
        data = body["data"]
        self.assertTrue(body["success"])
        self.assertEqual(data["coil_number"], "C123-45")
        self.assertEqual(data["defects_recorded"], 0)
        for kind, sent, ext in (("original", original, "jpg"), ("labeled", labeled, "bmp")):
            info = data[f"{kind}_image"]
            self.assertRegex(info["filename"], NAME)
            self.assertTrue(info["filename"].endswith(f"_{kind}.{ext}"))
            stored = Path(self.svc.root, kind, info["filename"])
            self.assertEqual(stored.read_bytes(), sent)
            self.assertEqual(info["path"], str(stored))
            self.assertEqual((info["size"], info["width"], info["height"]), (len(sent), 300, 200))
            self.assertEqual(info["sha256"], hashlib.sha256(sent).hexdigest())
        # Thumbnails follow in the background.
        yield self.svc.app.thumbnailer.idle()
        for kind in ("original", "labeled"):
            info = data[f"{kind}_image"]
            thumbnail_path = Path(self.svc.root, "thumbnails", kind, info["filename"].rsplit(".", 1)[0] + ".jpg")
            thumbnail = Image.open(thumbnail_path)
            self.assertEqual((thumbnail.format, max(thumbnail.size) <= 160), ("JPEG", True))
            self.assertEqual(query(self.svc.dsn, "SELECT thumbnail_path FROM images WHERE id = %s", (info["id"],)),
                             [(str(thumbnail_path),)])
        # Both names share one stamp.
        self.assertEqual(data["original_image"]["filename"].split("_")[1], data["labeled_image"]["filename"].split("_")[1])
        rows = query(self.svc.dsn, "SELECT kind, bytes, width, height, format, sha256, camera_id, pair_id,"
                                   " captured_at = '2025-04-09T04:59:14Z' FROM images ORDER BY kind")
        self.assertEqual([r[0] for r in rows], ["labeled", "original"])
        self.assertEqual(rows[1][1:7], (len(original), 300, 200, "JPEG", hashlib.sha256(original).hexdigest(), "bottom"))
        self.assertEqual(rows[0][4], "BMP")
        self.assertEqual(rows[0][7], rows[1][7])
        self.assertTrue(rows[0][8])
        self.assertEqual(self.svc.files("temp"), [])

    @defer.inlineCallbacks
    def test_missing_thumbnails_are_made_by_the_catch_up_job(self):
        """A missing thumbnail is made again by the catch-up job."""
        code, body = yield post_parts(self.svc.url, pair_parts())
        yield self.svc.app.thumbnailer.idle()
        name = body["data"]["original_image"]["filename"]
        thumbnail = Path(self.svc.root, "thumbnails", "original", name.rsplit(".", 1)[0] + ".jpg")
        thumbnail.unlink()
        query(self.svc.dsn, "UPDATE images SET thumbnail_path = NULL")
        yield self.svc.jobs[2][1]()  # the catch-up job
        yield self.svc.app.thumbnailer.idle()
        self.assertTrue(thumbnail.exists())
        self.assertEqual(query(self.svc.dsn, "SELECT count(*) FROM images WHERE thumbnail_path IS NULL"), [(0,)])

    @defer.inlineCallbacks
    def test_part_order_does_not_matter(self):
        """The order of the multipart parts does not matter."""
        parts = pair_parts(camera_id="top")
        parts.reverse()  # text fields first, labeled before original
        code, body = yield post_parts(self.svc.url, parts)
        self.assertEqual(code, 201, body)
        self.assertTrue(body["data"]["original_image"]["filename"].endswith("_original.jpg"))
        self.assertTrue(body["data"]["labeled_image"]["filename"].endswith("_labeled.png"))

    @defer.inlineCallbacks
    def test_type_decided_by_decoding_not_by_name(self):
        """An image's type is decided by decoding it, not by its file name or content type."""
        png = image_bytes("PNG")
        parts = [("original_image", "photo.jpg", "image/jpeg", png), ("labeled_image", "x.bmp", "text/plain", image_bytes("JPEG")),
                 ("coil_number", None, None, "C123-45")]
        code, body = yield post_parts(self.svc.url, parts)
        self.assertEqual(code, 201, body)
        self.assertTrue(body["data"]["original_image"]["filename"].endswith(".png"))
        self.assertTrue(body["data"]["labeled_image"]["filename"].endswith(".jpg"))

    @defer.inlineCallbacks
    def test_defect_data_stored_and_linked_to_the_pair(self):
        """defect_data is stored as defects linked to the pair, severity and review need derived."""
        defects = [{"defect_type": "scratch", "confidence_score": 0.97, "defect_position_meter": 12.5},
                   {"defect_type": "dent", "confidence_score": 0.4, "event_id": "123e4567-e89b-12d3-a456-426614174000"}]
        code, body = yield post_parts(self.svc.url, pair_parts(defect_data=json.dumps(defects)))
        self.assertEqual(code, 201, body)
        self.assertEqual(body["data"]["defects_recorded"], 2)
        rows = query(self.svc.dsn, "SELECT d.defect_type, d.severity, d.needs_review, d.coil_number, o.filename, l.filename"
                                   " FROM defect_detections d JOIN images o ON o.id = d.original_image_id"
                                   " JOIN images l ON l.id = d.labeled_image_id ORDER BY d.id")
        self.assertEqual([r[:4] for r in rows], [("scratch", "critical", False, "C123-45"), ("dent", "low", True, "C123-45")])
        self.assertEqual(rows[0][4], body["data"]["original_image"]["filename"])
        self.assertEqual(rows[0][5], body["data"]["labeled_image"]["filename"])

    @defer.inlineCallbacks
    def test_events_sent_for_images_and_defects(self):
        """An upload announces its images and its defects."""
        events = []
        yield self.svc.db.listen("ccl_events", events.append)
        code, body = yield post_parts(self.svc.url, pair_parts(defect_data='{"defect_type": "dent", "confidence_score": 0.9,'
                                                                          ' "defect_position_meter": 3.5}'))
        self.assertEqual(code, 201)
        yield wait_for(lambda: len(events) >= 3)
        kinds = sorted((e["table"], e.get("kind")) for e in events)
        self.assertEqual(kinds, [("defect_detections", None), ("images", "labeled"), ("images", "original")])
        image_event = next(e for e in events if e.get("kind") == "original")
        self.assertEqual((image_event["coil_number"], image_event["filename"]),
                         ("C123-45", body["data"]["original_image"]["filename"]))
        defect_event = next(e for e in events if e["table"] == "defect_detections")
        self.assertEqual((defect_event["defect_type"], defect_event["severity"], defect_event["defect_position_meter"]),
                         ("dent", "high", 3.5))

    @defer.inlineCallbacks
    def test_concurrent_uploads_for_one_coil_never_collide(self):
        """Concurrent uploads for one coil get distinct file names; none is lost."""
        results = yield defer.gatherResults([post_parts(self.svc.url, pair_parts()) for _ in range(24)])
        self.assertEqual([code for code, _ in results], [201] * 24)
        names = {body["data"]["original_image"]["filename"] for _, body in results}
        self.assertEqual(len(names), 24)
        self.assertEqual(len(self.svc.files("original")), 24)
        self.assertEqual(len(self.svc.files("labeled")), 24)
        self.assertEqual(self.rows(), 48)


class BadInputTests(Base):
    def test_truncated_jpeg(self):
        """A truncated JPEG is refused with 422 and nothing is written."""
        whole = image_bytes("JPEG", (400, 300))
        return self.assertRefused(pair_parts(original=whole[: len(whole) // 2]), 422, "truncated")

    def test_truncated_png(self):
        """A truncated PNG is refused with 422 and nothing is written."""
        whole = image_bytes("PNG", (400, 300))
        return self.assertRefused(pair_parts(labeled=whole[:-30]), 422, "truncated")

    def test_truncated_bmp(self):
        """A truncated BMP is refused with 422 and nothing is written."""
        whole = image_bytes("BMP", (400, 300))
        return self.assertRefused(pair_parts(labeled=whole[: len(whole) - 1000]), 422, "truncated")

    def test_png_decompression_bomb(self):
        """A PNG decompression bomb is refused with 413 (too many pixels) and nothing is written."""
        return self.assertRefused(pair_parts(labeled=png_bomb()), 413, "pixels")

    def test_text_file_named_jpg(self):
        """A text file named .jpg is refused with 415 and nothing is written."""
        parts = pair_parts(original=b"just some text, not a picture\n" * 20)
        return self.assertRefused(parts, 415, "not a JPEG")

    def test_sixty_megabyte_file(self):
        """A file over 50 MB is refused with 413 and nothing is written."""
        big = image_bytes("JPEG") + b"\x00" * (60 * 1024 * 1024)
        return self.assertRefused(pair_parts(original=big), 413, "50 MB")

    def test_coil_number_path_traversal(self):
        """A coil number with a path in it is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(coil="../../etc/passwd"), 400, "coil_number")

    def test_coil_number_with_space(self):
        """A coil number with a space is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(coil="A B"), 400, "coil_number")

    def test_coil_number_empty(self):
        """An empty coil number is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(coil=""), 400, "coil_number")

    def test_coil_number_missing(self):
        """A missing coil number is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(coil=None), 400, "coil_number")

    def test_coil_number_of_21_characters(self):
        """A coil number of 21 characters is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(coil="A" * 21), 400, "21")

    def test_missing_file_part(self):
        """A pair without its labeled image is refused with 400 and nothing is written."""
        parts = [p for p in pair_parts() if p[0] != "labeled_image"]
        return self.assertRefused(parts, 400, "labeled_image")

    def test_three_files(self):
        """Three files are refused with 400 and nothing is written."""
        parts = pair_parts()
        parts.insert(1, ("extra_image", "c.jpg", "image/jpeg", image_bytes("JPEG")))
        return self.assertRefused(parts, 400, "at most 2 files")

    def test_defect_data_not_json(self):
        """defect_data that is not JSON is refused with 400 and nothing is written."""
        return self.assertRefused(pair_parts(defect_data="{defect: scratch"), 400, "not valid JSON")

    def test_defect_data_with_a_text_no_column_can_hold(self):
        """A defect text with a NUL character is refused with 422 and nothing is written."""
        return self.assertRefused(
            pair_parts(defect_data='[{"defect_type": "de\\u0000nt", "confidence_score": 0.5}]'), 422, "defect_type")

    def test_defect_data_with_an_invalid_defect(self):
        """An invalid defect in defect_data is refused with 422 and nothing is written."""
        return self.assertRefused(pair_parts(defect_data='[{"defect_type": "dent", "confidence_score": 1.5}]'),
                                  422, "confidence_score")

    @defer.inlineCallbacks
    def test_not_multipart(self):
        """A body that is not multipart is refused with 415 and nothing is written."""
        response_code, body = yield post_json(self.svc.url, "/upload/pair", {"coil_number": "C1"})
        self.assertEqual(response_code, 415)
        yield self.assertNothingWritten()

    @defer.inlineCallbacks
    def test_broken_multipart(self):
        """A broken multipart body is refused with 400 and nothing is written."""
        body, content_type = multipart(pair_parts())
        response = yield treq.post(self.svc.url + "/upload/pair", data=body[: len(body) // 2] + b"garbage",
                                   headers={"Content-Type": content_type}, pool=ingest._pool)
        self.assertEqual(response.code, 400)
        self.assertIn("multipart", (yield response.json())["error"])
        yield self.assertNothingWritten()

    @defer.inlineCallbacks
    def test_content_length_over_the_limit_refused_before_the_body(self):
        """A Content-Length over the limit is refused with 413 before the body is sent."""
        port = int(self.svc.url.rsplit(":", 1)[1])

        def exchange():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /upload/pair HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                             b"Content-Length: 500000000\r\n\r\n")
                reply = b""
                while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                    data = sock.recv(4096)
                    if not data:
                        break
                    reply += data
                return reply

        reply = yield threads.deferToThread(exchange)
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply)
        self.assertEqual(json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"], "request too large")
        yield self.assertNothingWritten()


class ReadTests(Base):
    @defer.inlineCallbacks
    def test_empty_store_answers_empty_lists(self):
        """An empty store answers empty lists, no latest image and zero figures."""
        code, body, _, _ = yield get(self.svc.url, "/list/original")
        self.assertEqual((code, body["data"]["images"], body["data"]["total"]), (200, [], 0))
        code, body, _, _ = yield get(self.svc.url, "/latest/labeled")
        self.assertEqual((code, body["data"]), (200, None))
        code, body, _, _ = yield get(self.svc.url, "/stats")
        self.assertEqual((code, body["data"]["total_images"], body["data"]["last_upload_time"]), (200, 0, None))

    @defer.inlineCallbacks
    def test_latest_list_image_and_stats(self):
        """Latest, list (by coil, dates, pages), the file itself and /stats answer what was uploaded."""
        sent = []
        for coil in ("C1", "C2", "C1"):
            original = image_bytes("JPEG", (50 + len(sent), 40))
            code, body = yield post_parts(self.svc.url, pair_parts(coil=coil, original=original))
            self.assertEqual(code, 201)
            sent.append((coil, original, body["data"]))
        code, body, _, _ = yield get(self.svc.url, "/latest/original")
        self.assertEqual(body["data"]["filename"], sent[2][2]["original_image"]["filename"])
        code, body, _, _ = yield get(self.svc.url, "/latest/original?coil_number=C2")
        self.assertEqual(body["data"]["filename"], sent[1][2]["original_image"]["filename"])
        code, body, _, _ = yield get(self.svc.url, "/list/labeled?limit=2&page=1")
        self.assertEqual((body["data"]["total"], len(body["data"]["images"]), body["data"]["pages"]), (3, 2, 2))
        code, body, _, _ = yield get(self.svc.url, "/list/original?coil_number=C1")
        self.assertEqual(body["data"]["total"], 2)
        code, body, _, _ = yield get(self.svc.url, "/list/original?from_date=2000-01-01&to_date=2001-01-01")
        self.assertEqual(body["data"]["total"], 0)
        code, _, raw, response = yield get(self.svc.url, "/image/original/" + sent[0][2]["original_image"]["filename"])
        self.assertEqual((code, raw), (200, sent[0][1]))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["image/jpeg"])
        code, body, _, _ = yield get(self.svc.url, "/stats")
        stats = body["data"]
        self.assertEqual((stats["total_images"], stats["total_pairs"], stats["coils"]), (6, 3, 2))
        self.assertEqual((stats["by_kind"], stats["purged_images"], stats["last_coil_number"]),
                         ({"original": 3, "labeled": 3}, 0, "C1"))
        self.assertEqual(stats["stored_bytes"], sum(d[f"{kind}_image"]["size"] for _c, _o, d in sent
                                                    for kind in ("original", "labeled")))
        self.assertEqual(datetime.fromisoformat(stats["last_upload_time"]),
                         datetime.fromisoformat(sent[2][2]["upload_time"]))

    @defer.inlineCallbacks
    def test_concurrent_stats_requests_share_one_read(self):
        """Concurrent /stats requests share one read."""
        code, _ = yield post_parts(self.svc.url, pair_parts(coil="C1"))
        self.assertEqual(code, 201)
        shared = self.svc.app.read_stats
        runs = shared.runs
        answers = yield stats_asked_together(self, self.svc, "images", 4)
        self.assertEqual([(code, body["data"]["total_images"]) for code, body, _, _ in answers], [(200, 2)] * 4)
        self.assertTrue(all(body["data"]["disk"]["total_bytes"] > 0 for _, body, _, _ in answers))
        self.assertEqual(shared.runs, runs + 1)

    @defer.inlineCallbacks
    def test_bad_read_arguments(self):
        """Bad read arguments get 400, unknown kinds and paths 404, with a reason."""
        for path, status in (("/list/original?limit=201", 400), ("/list/original?page=0", 400),
                             ("/list/other", 404), ("/latest/original?coil_number=A%20B", 400),
                             ("/list/original?from_date=yesterday", 400), ("/nowhere", 404)):
            code, body, _, _ = yield get(self.svc.url, path)
            self.assertEqual(code, status, path)
            self.assertTrue(body["error"], path)

    @defer.inlineCallbacks
    def test_image_path_traversal(self):
        """Paths that climb out of the store, or name no stored file, get 400 or 404 and no file."""
        for path in ("/image/original/..%2f..%2fetc%2fpasswd", "/image/original/../../etc/passwd",
                     "/image/original/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/image/original/C1_20250409135914123_original.jpg"):
            code, body, raw, _ = yield get(self.svc.url, path)
            self.assertIn(code, (400, 404), path)
            self.assertTrue(body["error"], path)
            self.assertNotIn(b"root:", raw)

    @defer.inlineCallbacks
    def test_health_and_metrics(self):
        """/health reports database and storage ok, and /metrics counts the pairs stored."""
        yield self.svc.jobs[0][1]()  # the health check job
        code, body, _, _ = yield get(self.svc.url, "/health")
        self.assertEqual((code, body["status"], body["database"], body["storage"]), (200, "ok", "ok", "ok"))
        yield post_parts(self.svc.url, pair_parts())
        code, _, raw, _ = yield get(self.svc.url, "/metrics")
        self.assertIn(b"ccl_ingest_image_pairs_total 1", raw)
        self.assertIn(b'ccl_ingest_image_requests_total{route="upload_pair",status="201"} 1', raw)
