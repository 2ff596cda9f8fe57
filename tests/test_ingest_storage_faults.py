"""A full or read-only image root: 503, nothing half-written, the service keeps serving.

Uses a small tmpfs mounted for the test (needs root; skipped otherwise).
"""

import io
import os
import random
import subprocess

import psycopg2
from PIL import Image
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SkipTest, TestCase

from tests.support.cluster import private_cluster
from tests.support.database import query
from tests.support.ingest import get, pair_parts, post_parts, start_service


def noise_bmp(side: int) -> bytes:
    """An image that does not compress: a BMP of random pixels (side*side*3 bytes)."""
    rng = random.Random(side)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "BMP")
    return buffer.getvalue()


def small_filesystem(testcase, size: str) -> str:
    if os.geteuid() != 0:
        raise SkipTest("mounting a tmpfs needs root")
    path = os.path.abspath(testcase.mktemp())
    os.makedirs(path)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
    if result.returncode != 0:
        raise SkipTest(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    testcase.addCleanup(subprocess.run, ["umount", "-l", path], capture_output=True)
    return path


class StorageFaultTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_disk_full_is_503_and_leaves_nothing(self):
        """A full disk answers 503 and leaves no file and no row; the service then takes what fits."""
        root = small_filesystem(self, "1m")
        svc = yield start_service(self, "images", root=root)
        # 750 KB each: the first fits the 1 MB file system, the second does not.
        code, body = yield post_parts(svc.url, pair_parts(original=noise_bmp(500), labeled=noise_bmp(501)))
        self.assertEqual(code, 503, body)
        self.assertEqual(body["error"], "image storage unavailable")
        self.assertEqual(svc.files(), [])
        self.assertEqual(query(svc.dsn, "SELECT count(*) FROM images")[0][0], 0)
        # The service stays up and takes what fits.
        code, body = yield post_parts(svc.url, pair_parts())
        self.assertEqual(code, 201, body)
        code, body, _, _ = yield get(svc.url, "/list/original")
        self.assertEqual((code, body["data"]["total"]), (200, 1))

    @defer.inlineCallbacks
    def test_read_only_image_root_is_503_and_reported_by_health(self):
        """A read-only image root answers 503 and /health says degraded; once writable again uploads work."""
        root = small_filesystem(self, "4m")
        svc = yield start_service(self, "images", root=root)
        subprocess.run(["mount", "-o", "remount,ro", root], check=True)
        code, body = yield post_parts(svc.url, pair_parts())
        self.assertEqual(code, 503, body)
        yield svc.jobs[0][1]()
        code, health, _, _ = yield get(svc.url, "/health")
        self.assertEqual((health["status"], health["storage"]), ("degraded", "unwritable"))
        subprocess.run(["mount", "-o", "remount,rw", root], check=True)
        self.assertEqual(svc.files(), [])
        code, body = yield post_parts(svc.url, pair_parts())
        self.assertEqual(code, 201, body)
        yield svc.jobs[0][1]()
        code, health, _, _ = yield get(svc.url, "/health")
        self.assertEqual(health["storage"], "ok")


class DatabaseDownTests(TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_database_down_is_503_and_the_files_are_removed_again(self):
        """With PostgreSQL down an upload answers 503 and its files are removed; uploads work once it is back."""
        cluster, dsn = private_cluster(self)
        svc = yield start_service(self, "images", dsn=dsn)
        code, _ = yield post_parts(svc.url, pair_parts())
        self.assertEqual(code, 201)
        yield svc.app.thumbnailer.idle()
        before = svc.files()
        cluster.stop()
        code, body = yield post_parts(svc.url, pair_parts())
        self.assertEqual(code, 503, body)
        self.assertEqual(svc.files(), before)
        cluster.start(fast=True)
        for _ in range(40):
            code, body = yield post_parts(svc.url, pair_parts())
            if code == 201:
                break
            yield task.deferLater(reactor, 0.25, lambda: None)
        self.assertEqual(code, 201, body)
        self.flushLoggedErrors(psycopg2.OperationalError)
