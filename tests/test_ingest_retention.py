"""The retention job on real files and rows: oldest first, rows kept and marked purged, logged."""

import os
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.image_store import ImageStore
from ccl.adapters.storage.retention import run_retention, sweep_orphans
from ccl.domain.ingest.retention import Policy
from tests.support.database import DatabaseTestCase, query
from tests.support.ingest import get, image_bytes, pair_parts, post_parts, start_service


class RetentionTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def upload(self, svc, n):
        names = []
        for i in range(n):
            code, body = yield post_parts(svc.url, pair_parts(coil=f"C{i}", original=image_bytes("JPEG", (100, 80))))
            self.assertEqual(code, 201)
            names.append((body["data"]["original_image"]["filename"], body["data"]["labeled_image"]["filename"]))
        return names

    @defer.inlineCallbacks
    def test_store_limit_deletes_oldest_first_and_keeps_rows(self):
        """Over the store limit, the oldest files go first until under it; rows stay marked purged, logged, audited."""
        # A limit of about 3 KB: the service's own job (configured from [images]) must trim the store.
        svc = yield start_service(self, "images", env={"CCL_IMAGES_MAX_STORE_GB": str(3000 / 1024 ** 3),
                                                       "CCL_IMAGES_RETENTION_DAYS": "0"})
        names = yield self.upload(svc, 4)
        stored = query(svc.dsn, "SELECT sum(bytes) FROM images")[0][0]
        self.assertGreater(stored, 3000)
        logged = []
        from twisted.logger import globalLogPublisher
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        yield svc.jobs[1][1]()
        purged = query(svc.dsn, "SELECT filename FROM images WHERE purged_at IS NOT NULL ORDER BY id")
        kept = query(svc.dsn, "SELECT filename FROM images WHERE purged_at IS NULL ORDER BY id")
        self.assertTrue(purged)
        self.assertEqual(query(svc.dsn, "SELECT count(*) FROM images")[0][0], 8)  # rows stay
        all_names = [n for pair in names for n in pair]
        self.assertEqual([p[0] for p in purged], all_names[: len(purged)])  # oldest first
        self.assertLessEqual(query(svc.dsn, "SELECT sum(bytes) FROM images WHERE purged_at IS NULL")[0][0], 3000)
        for (name,) in purged:
            kind = "original" if "_original." in name else "labeled"
            self.assertFalse(Path(svc.root, kind, name).exists())
            self.assertFalse(Path(svc.root, "thumbnails", kind, name.rsplit(".", 1)[0] + ".jpg").exists())
        for (name,) in kept:
            kind = "original" if "_original." in name else "labeled"
            self.assertTrue(Path(svc.root, kind, name).exists())
        texts = [e.get("log_format", "") for e in logged]
        self.assertEqual(sum("retention deleted" in t for t in texts), len(purged))
        audit = query(svc.dsn, "SELECT action, details->>'deleted' FROM audit_logs")
        self.assertEqual(audit, [("images.retention", str(len(purged)))])
        # A purged image is gone for readers; its row is still listed, marked.
        code, body, _, _ = yield get(svc.url, f"/image/original/{purged[0][0]}" if "_original." in purged[0][0]
                                     else f"/image/labeled/{purged[0][0]}")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_age_limit(self):
        """Images older than the age limit are purged (files gone, rows marked), and a second run has nothing to do."""
        svc = yield start_service(self, "images")
        yield self.upload(svc, 3)
        query(svc.dsn, "UPDATE images SET received_at = now() - interval '40 days' WHERE coil_number = 'C0'")
        result = yield svc.pool.run(run_retention, svc.app.store, Policy(max_age_days=30, high_percent=100, low_percent=100))
        self.assertEqual((result.deleted, result.reasons), (2, {"age": 2}))
        self.assertEqual(query(svc.dsn, "SELECT coil_number, count(*) FROM images WHERE purged_at IS NOT NULL"
                                        " GROUP BY coil_number"), [("C0", 2)])
        self.assertEqual(len(svc.files("original")), 2)
        # Nothing more to do on a second run.
        result = yield svc.pool.run(run_retention, svc.app.store, Policy(max_age_days=30, high_percent=100, low_percent=100))
        self.assertEqual(result.deleted, 0)


    @defer.inlineCallbacks
    def test_each_host_purges_only_the_images_its_store_holds(self):
        """Two plant servers on one database: ccl1's retention job (its own, from [images]) purges
        ccl1's old images and the old rows without a host, never ccl2's, whose file it cannot delete."""
        ccl1 = yield start_service(self, "images", env={"CCL_IMAGES_HOST_NAME": "ccl1"})
        ccl2 = yield start_service(self, "images", dsn=ccl1.dsn, env={"CCL_IMAGES_HOST_NAME": "ccl2"})
        yield self.upload(ccl1, 1)
        code, _ = yield post_parts(ccl2.url, pair_parts(coil="D0"))
        self.assertEqual(code, 201)
        query(ccl1.dsn, "UPDATE images SET received_at = now() - interval '100 days'")
        query(ccl1.dsn, "UPDATE images SET stored_on = NULL WHERE coil_number = 'C0' AND kind = 'labeled'")
        yield ccl1.jobs[1][1]()
        self.assertEqual(query(ccl1.dsn, "SELECT coil_number, kind, stored_on, purged_at IS NOT NULL FROM images"
                                         " ORDER BY id"),
                         [("C0", "original", "ccl1", True), ("C0", "labeled", None, True),
                          ("D0", "original", "ccl2", False), ("D0", "labeled", "ccl2", False)])
        self.assertEqual((ccl1.files("original", "labeled"), len(ccl2.files("original", "labeled"))), ([], 2))


class OrphanSweepTests(DatabaseTestCase, TestCase):
    def setUp(self):
        return self.start_database()

    def test_files_without_a_row_from_before_the_start_go_and_later_ones_stay(self):
        """Files without a row from before the start (file system clock) are swept; one placed after stays."""
        store = ImageStore(Path(self.mktemp()), max_pixels=10**7)
        store.prepare()
        crashed = store.folder("original") / "C1_20261127101500000_original.jpg"
        crashed.write_bytes(b"placed, then a crash before its row")
        os.utime(crashed, (0, store.file_time() - 60))
        started = store.file_time()  # the cut-off by the file system's clock, as ccl-images takes it
        placed = store.folder("labeled") / "C1_20261127101500001_labeled.jpg"
        placed.write_bytes(b"an upload under way: no row yet")
        removed = sweep_orphans(self.connection, store, started)
        self.assertEqual((removed, crashed.exists(), placed.exists()), (1, False, True))
