"""twistd ccl-defects: the AI defect receiver (port 8082), assembled."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.application import service
from twisted.internet import reactor
from twisted.logger import Logger

from ccl.adapters.storage.defect_store import DefectRecords
from ccl.adapters.storage.heartbeats import HeartbeatRecords
from ccl.adapters.storage.ingest_tokens import TokenRecords
from ccl.adapters.storage.jetson_links import JetsonLinkRecords
from ccl.adapters.web.ingest.common import Gate, ingest_site
from ccl.adapters.web.ingest.defects_app import DefectsApp
from ccl.adapters.web.status import status_resource
from ccl.application.defects import DefectIngestion
from ccl.application.heartbeats import HeartbeatReceiver
from ccl.application.jetson_links import LinkTracker
from ccl.config import Config
from ccl.domain.metrics import Registry
from ccl.services import ingest
from ccl.services.ingest_settings import DefectsSettings
from ccl.services.tracking import live_tracking

log = Logger()


class Options(ingest.Options):
    settings_type = DefectsSettings


def build(config: Config, settings: DefectsSettings) -> ingest.Built:
    db, pool = ingest.databases(config, settings.ingest.pool_size)
    registry = Registry()
    checks = ingest.Checks()
    records = DefectRecords(db, pool, reactor)
    links = LinkTracker(JetsonLinkRecords(db), reactor, save_interval=settings.ingest.link_save_interval,
                        silent_after=settings.ingest.link_silent_after)

    def health():
        return {"service": "ccl-defects", "status": "ok" if checks.database == "ok" else "degraded",
                "database": checks.database}

    refused = registry.counter("ingest_refused_too_large_total", "Requests refused for their size before reading")
    app = DefectsApp(
        records=records,
        ingestion=DefectIngestion(records, links, now=lambda: datetime.now(timezone.utc)),
        heartbeats=HeartbeatReceiver(HeartbeatRecords(db), links, settings.heartbeat_max_period),
        gate=Gate(TokenRecords(db), settings.ingest.networks, reactor),
        registry=registry, max_batch=settings.max_batch, status_resource=status_resource(registry, health))
    site = ingest_site(app.resource(), settings.max_body_bytes, on_refused=refused.inc)
    jobs = [(5.0, lambda: checks.check_database(db)), (settings.ingest.link_save_interval, links.flush)]
    return ingest.Built(db, pool, site, app, jobs)


def makeService(options: Options) -> service.MultiService:  # noqa: N802 (twistd's name)
    settings = options.settings
    top = ingest.serve(build(options.config, settings), settings.listen)
    tracking = live_tracking(options.config, top.db, reactor)  # places defects and images as they are stored
    if tracking is not None:
        tracking.setServiceParent(top)
    log.info("ccl-defects listening on {listen}", listen=settings.listen)
    return top
