"""twistd services ``ccl-images`` and ``ccl-defects``: config, database, Site, background jobs."""

from __future__ import annotations

import os

from twisted.application import internet, service, strports
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python import usage

from ccl.adapters.runtime import tune_interpreter
from ccl.adapters.storage.image_records import ImageRecord, IngestRecords
from ccl.adapters.storage.image_store import ImageStore, StorageUnavailable, ThreadedImageFiles
from ccl.adapters.storage.localdb import resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.retention import run_retention, sweep_orphans
from ccl.adapters.storage.sync_pool import SyncPool
from ccl.adapters.storage.thumbnails import Thumbnailer
from ccl.adapters.web.ingest.common import Gate, ingest_site
from ccl.adapters.web.ingest.defects_app import DefectsApp
from ccl.adapters.web.ingest.images_app import ImagesApp
from ccl.adapters.web.status import status_resource
from ccl.application.image_pairs import PairIngestion
from ccl.config import Config, ConfigError, load_config
from ccl.domain.ingest.retention import Policy
from ccl.domain.metrics import Registry

log = Logger()
MB = 1024 * 1024


class Options(usage.Options):
    optParameters = [["listen", "l", None, "endpoint to listen on (default: from the configuration)"]]

    def postOptions(self):  # noqa: N802 (twisted's name)
        try:
            self.config = load_config()
            self.settings = self.read_settings(self.config)
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


class _Checks:
    """Health state refreshed in the background, so /health answers at once."""

    def __init__(self):
        self.database = "unknown"
        self.storage = "ok"
        self.storage_error = None


class IngestService(service.MultiService):
    """Owns the database pools; started before the listening port (added first)."""

    def __init__(self, db: Database, pool: SyncPool):
        super().__init__()
        self.db = db
        self.pool = pool

    def startService(self):  # noqa: N802
        self.pool.start()
        self.db.start()
        tune_interpreter()  # garbage collector and GIL switch interval, see ccl/adapters/runtime.py
        super().startService()

    def stopService(self):  # noqa: N802
        result = super().stopService()
        self.db.close()
        self.pool.stop()
        return result


def _database(config: Config):
    dsn = resolve_dsn(config)
    size = config.get_int("database", "pool_size", 1, 64)
    return Database(reactor, dsn, size), SyncPool(reactor, dsn, size=2)


def _check_database(db, checks):
    def ok(_):
        checks.database = "ok"

    def down(failure):
        checks.database = "unavailable"

    return db.runQuery("SELECT 1").addCallbacks(ok, down)


# Images ------------------------------------------------------------------------------------

class ImagesOptions(Options):
    def read_settings(self, config: Config) -> dict:
        return {
            "listen": self["listen"] or config.get_endpoint("images", "listen"),
            "root": config.get_path("images", "root"),
            "max_file_bytes": config.get_int("images", "max_file_mb", 1, 1024) * MB,
            "max_pixels": config.get_int("images", "max_megapixels", 1, 1000) * 1_000_000,
            "thumbnail_size": config.get_int("images", "thumbnail_size", 32, 2048),
            "policy": Policy(max_age_days=config.get_float("images", "retention_days", 0),
                             high_percent=config.get_float("images", "disk_high_percent", 1, 100),
                             low_percent=config.get_float("images", "disk_low_percent", 1, 100),
                             max_store_bytes=int(config.get_float("images", "max_store_gb", 0) * 1024 ** 3)),
            "retention_interval": config.get_float("images", "retention_interval", 1),
            "networks": config.get_networks("ingest", "allow"),
            "worker_threads": worker_threads(config.get_int("images", "worker_threads", 0, 256)),
        }


def worker_threads(configured: int) -> int:
    """Threads receiving, checking and placing image files: ``configured``, or for 0 the
    number of CPUs + 2. More only make the uploads wait for each other (for the GIL and the
    CPUs): on the 2-core reference machine 10 threads took 92-94 pairs/s, 3-4 took 101-106
    (bench/ingest_images.py, concurrency 8)."""
    return configured or (os.cpu_count() or 2) + 2


def build_images(config: Config, settings: dict):
    """The Site and the services of ccl-images (separate from makeService for tests)."""
    db, pool = _database(config)
    store = ImageStore(settings["root"], max_pixels=settings["max_pixels"],
                       thumbnail_size=settings["thumbnail_size"])
    removed = store.prepare()
    if removed:
        log.warn("removed {n} partial uploads left in {temp} by an earlier stop", n=removed, temp=store.temp)
    registry = Registry()
    checks = _Checks()
    records = IngestRecords(db, pool, reactor)
    thumbnailer = Thumbnailer(store, db)
    ingestion = PairIngestion(ThreadedImageFiles(store), records, ImageRecord, thumbnailer)

    def health():
        status = "ok" if checks.database == "ok" and checks.storage == "ok" else "degraded"
        return {"service": "ccl-images", "status": status, "database": checks.database, "storage": checks.storage,
                "storage_error": checks.storage_error, "image_root": str(store.root)}

    def disk_free():
        try:
            return store.disk_usage().free
        except OSError:
            return float("nan")

    registry.gauge("ingest_image_disk_free_bytes", "Free bytes on the image root's file system", read=disk_free)
    registry.gauge("ingest_thumbnail_backlog", "Thumbnails waiting to be made", read=thumbnailer.backlog)
    refused = registry.counter("ingest_refused_too_large_total", "Requests refused for their size before reading")
    app = ImagesApp(db=db, store=store, ingestion=ingestion, thumbnailer=thumbnailer, gate=Gate(db, settings["networks"], reactor),
                    registry=registry, max_file_bytes=settings["max_file_bytes"],
                    status_resource=status_resource(registry, health))
    site = ingest_site(app.resource(), 2 * settings["max_file_bytes"] + MB, on_refused=refused.inc)

    def check():
        _check_database(db, checks)

        def storage_ok(_):
            checks.storage, checks.storage_error = "ok", None

        def storage_bad(failure):
            failure.trap(StorageUnavailable, OSError)
            checks.storage, checks.storage_error = "unwritable", failure.getErrorMessage()

        return deferToThread(store.probe).addCallbacks(storage_ok, storage_bad)

    deleted = registry.counter("ingest_images_purged_total", "Images deleted by the retention job")

    def retention():
        def done(result):
            if result.deleted:
                deleted.inc(result.deleted)
                log.info("retention: {n} images deleted, {mb:.1f} MB freed", n=result.deleted,
                         mb=result.freed_bytes / MB)

        def failed(failure):
            log.warn("retention run failed: {error}", error=failure.getErrorMessage())

        return pool.run(run_retention, store, settings["policy"]).addCallbacks(done, failed)

    started = reactor.seconds()

    def sweep():
        # Once, when the database is reachable: files placed just before a crash, never committed.
        def failed(failure):
            log.warn("orphan sweep failed: {error}", error=failure.getErrorMessage())

        return db.when_ready().addCallback(lambda _: pool.run(sweep_orphans, store, started)).addErrback(failed)

    reactor.callWhenRunning(sweep)
    return db, pool, site, app, [(5.0, check), (settings["retention_interval"], retention),
                                 (60.0, thumbnailer.catch_up)]


def _serve(built: tuple, listen: str) -> service.MultiService:
    """The twistd service of a built ingestion service: its database, timers and listener."""
    db, pool, site, _app, jobs = built
    top = IngestService(db, pool)
    for interval, job in jobs:
        internet.TimerService(interval, job).setServiceParent(top)
    strports.service(listen, site).setServiceParent(top)
    return top


def make_images_service(options) -> service.MultiService:
    settings = options.settings
    # The reactor's pool runs every file step of an upload (ThreadedImageFiles, read_form).
    reactor.suggestThreadPoolSize(settings["worker_threads"])
    top = _serve(build_images(options.config, settings), settings["listen"])
    log.info("ccl-images listening on {listen}, image root {root}, {threads} worker threads",
             listen=settings["listen"], root=settings["root"], threads=settings["worker_threads"])
    return top


# Defects -----------------------------------------------------------------------------------

class DefectsOptions(Options):
    def read_settings(self, config: Config) -> dict:
        return {
            "listen": self["listen"] or config.get_endpoint("defects", "listen"),
            "max_batch": config.get_int("defects", "max_batch", 1, 1_000_000),
            "max_body_bytes": config.get_int("defects", "max_body_mb", 1, 1024) * MB,
            "networks": config.get_networks("ingest", "allow"),
        }


def build_defects(config: Config, settings: dict):
    db, pool = _database(config)
    registry = Registry()
    checks = _Checks()
    records = IngestRecords(db, pool, reactor)

    def health():
        return {"service": "ccl-defects", "status": "ok" if checks.database == "ok" else "degraded",
                "database": checks.database}

    refused = registry.counter("ingest_refused_too_large_total", "Requests refused for their size before reading")
    app = DefectsApp(db=db, pool=pool, records=records, gate=Gate(db, settings["networks"], reactor),
                     registry=registry, max_batch=settings["max_batch"],
                     status_resource=status_resource(registry, health))
    site = ingest_site(app.resource(), settings["max_body_bytes"], on_refused=refused.inc)
    return db, pool, site, app, [(5.0, lambda: _check_database(db, checks))]


def make_defects_service(options) -> service.MultiService:
    top = _serve(build_defects(options.config, options.settings), options.settings["listen"])
    log.info("ccl-defects listening on {listen}", listen=options.settings["listen"])
    return top

