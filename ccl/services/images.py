"""twistd ccl-images: the image-pair receiver (port 8081), assembled."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from ccl.adapters.storage.image_records import IngestRecords
from ccl.adapters.storage.image_store import ImageStore, ThreadedImageFiles
from ccl.adapters.storage.ingest_tokens import TokenRecords
from ccl.adapters.storage.jetson_links import JetsonLinkRecords
from ccl.adapters.storage.retention import ImageRetention
from ccl.adapters.storage.thumbnails import Thumbnailer
from ccl.adapters.web.ingest.common import Gate, ingest_site
from ccl.adapters.web.ingest.images_app import ImagesApp
from ccl.adapters.web.status import status_resource
from ccl.application.image_housekeeping import ImageHousekeeping
from ccl.application.image_pairs import PairIngestion
from ccl.application.jetson_links import LinkTracker
from ccl.config import Config
from ccl.domain.metrics import Registry
from ccl.ports import StorageUnavailable
from ccl.services import ingest
from ccl.services.ingest_settings import MB, ImagesSettings

log = Logger()


class Options(ingest.Options):
    settings_type = ImagesSettings


def build(config: Config, settings: ImagesSettings) -> ingest.Built:
    db, pool = ingest.databases(config, settings.ingest.pool_size)
    store = ImageStore(settings.root, max_pixels=settings.max_pixels, thumbnail_size=settings.thumbnail_size)
    removed = store.prepare()
    if removed:
        log.warn("removed {n} partial uploads left in {temp} by an earlier stop", n=removed, temp=store.temp)
    registry = Registry()
    checks = ingest.Checks()
    records = IngestRecords(db, pool, reactor)
    thumbnailer = Thumbnailer(store, db)
    links = LinkTracker(JetsonLinkRecords(db), reactor, save_interval=settings.ingest.link_save_interval,
                        silent_after=settings.ingest.link_silent_after)
    ingestion = PairIngestion(ThreadedImageFiles(store), records, thumbnailer, links, stored_on=settings.host_name)

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
    app = ImagesApp(records=records, store=store, ingestion=ingestion, thumbnailer=thumbnailer,
                    gate=Gate(TokenRecords(db), settings.ingest.networks, reactor), registry=registry,
                    max_file_bytes=settings.max_file_bytes, status_resource=status_resource(registry, health))
    site = ingest_site(app.resource(), 2 * settings.max_file_bytes + MB, on_refused=refused.inc)

    def check():
        checks.check_database(db)

        def storage_ok(_):
            checks.storage, checks.storage_error = "ok", None

        def storage_bad(failure):
            failure.trap(StorageUnavailable, OSError)
            checks.storage, checks.storage_error = "unwritable", failure.getErrorMessage()

        return deferToThread(store.probe).addCallbacks(storage_ok, storage_bad)

    purged = registry.counter("ingest_images_purged_total", "Images deleted by the retention job")
    housekeeping = ImageHousekeeping(ImageRetention(pool, store, settings.host_name), settings.policy, purged)
    # The orphan sweep's cut-off, by the file system's clock (file times compare with it).
    try:
        started = store.file_time()
    except StorageUnavailable:
        started = reactor.seconds()  # nothing can be placed, or removed, until the root is writable
    # Once, when the database is reachable: files placed just before a crash, never committed.
    reactor.callWhenRunning(lambda: db.when_ready().addCallback(lambda _: housekeeping.sweep(started)))
    jobs = [(5.0, check), (settings.retention_interval, housekeeping.purge), (60.0, thumbnailer.catch_up),
            (settings.ingest.link_save_interval, links.flush)]
    return ingest.Built(db, pool, site, app, jobs)


def makeService(options: Options) -> service.MultiService:  # noqa: N802 (twistd's name)
    settings = options.settings
    # The reactor's pool runs every file step of an upload (ThreadedImageFiles, read_form).
    reactor.suggestThreadPoolSize(settings.worker_threads)
    top = ingest.serve(build(options.config, settings), settings.listen)
    log.info("ccl-images {host} listening on {listen}, image root {root}, {threads} worker threads",
             host=settings.host_name, listen=settings.listen, root=settings.root, threads=settings.worker_threads)
    return top
