"""twistd ccl-ui: the web UI service (Klein app on ``[ui] listen``, default tcp:3000), composed.

Storage adapters -> use cases and read ports (``UseCases``) -> the UI's Klein app, plus the
background jobs (session purge, statistics roll-up). :func:`compose_ui` is the wiring; the
tests use it too, so they run the UI exactly as the service does.
"""

from __future__ import annotations

import datetime

from twisted.application import service, strports
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python import usage

from ccl.adapters.peer_images import PeerImages
from ccl.adapters.storage.accounts import AccountStore, SessionStore
from ccl.adapters.storage.alert_store import AlertStore
from ccl.adapters.reports.pdf import PdfRenderer
from ccl.adapters.reports.training_zip import TrainingArchive
from ccl.adapters.storage.audit_log import AuditLog
from ccl.adapters.storage.coil_report import CoilReportReads, ReviewReads
from ccl.adapters.storage.inspection_store import DefectReviewStore, SettingsStore
from ccl.adapters.storage.localdb import resolve_dsn, resolve_read_dsn
from ccl.adapters.storage.postgres import UNAVAILABLE, Database, DatabaseProbe, EventFeed
from ccl.adapters.storage.quality_store import GradingRecords, QualityAdminRecords
from ccl.adapters.storage.refusals import PgDeadLetters, PgRejectedTelegrams
from ccl.adapters.storage.tracking_store import TrackingReads
from ccl.adapters.storage.ui_queries import rollup
from ccl.adapters.storage.ui_queries.reads import CoilHistory, CoilReads, DashboardReads, ModelRegistry, Statistics
from ccl.adapters.web.ui.app import UI
from ccl.adapters.web.ui.settings import UISettings
from ccl.adapters.web.ui.site import site
from ccl.adapters.web.ui.uses import UseCases
from ccl.application.accounts import Accounts
from ccl.application.ai_models import ModelDeployment, ModelRegistration
from ccl.application.alerts import Alerts
from ccl.application.inspection import DefectReviews, InspectionRules
from ccl.application.quality import Grading, QualityAdmin
from ccl.application.refusals import DeadLetters, RejectedTelegrams
from ccl.application.reports import CoilReports, ReviewAccuracy, TrainingExport
from ccl.config import ConfigError, load_config
from ccl.domain.telegrams import load_layouts

log = Logger()


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Web UI of the CCL plant server. Settings: [ui] in ccl/data/ccl.ini (CCL_UI_* variables)."

    def postOptions(self):  # noqa: N802 (twisted's name)
        try:
            self["config"] = config = load_config()
            self["dsn"] = resolve_dsn(config)
            self["read_dsn"] = resolve_read_dsn(config)
            self["settings"] = UISettings.from_config(config)
            self["pool_size"] = config.get_int("database", "pool_size", 1, 64)
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


class _Database(service.Service):
    def __init__(self, db):
        self.db = db

    def startService(self):  # noqa: N802
        super().startService()
        self.db.start()

    def stopService(self):  # noqa: N802
        super().stopService()
        self.db.close()


class _Housekeeping(service.Service):
    """Deletes expired sessions every few minutes."""

    def __init__(self, ui):
        self.ui = ui
        self._loop = task.LoopingCall(self._purge)

    def _purge(self):
        d = defer.ensureDeferred(self.ui.sessions.purge_expired())
        d.addErrback(lambda f: log.warn("session purge failed: {error}", error=f.getErrorMessage()))
        return None

    def startService(self):  # noqa: N802
        super().startService()
        self._loop.start(300, now=False)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self.ui.orchestrator.close()


class _StatsRollup(service.Service):
    """Keeps the daily roll-up of the statistics current (ui_queries/rollup.py). The page is
    exact without it (unsummed days are read from the defects), only slower."""

    def __init__(self, db, every: int, clock):
        self.db = db
        self.every = every
        self.clock = clock
        self._loop = task.LoopingCall(self._refresh)
        self._loop.clock = clock

    def _refresh(self):
        d = rollup.refresh(self.db, datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc))
        d.addCallback(lambda days: days and log.info("statistics roll-up: summed {n} day(s), {first} .. {last}",
                                                     n=len(days), first=days[0], last=days[-1]))

        def failed(failure):
            if not failure.check(*UNAVAILABLE):
                log.failure("statistics roll-up failed", failure)

        d.addErrback(failed)
        return d

    def startService(self):  # noqa: N802
        super().startService()
        self._loop.start(self.every, now=True)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()


def compose_ui(reactor, settings: UISettings, db: Database, clock=None, read_db: Database | None = None) -> UI:
    """The UI over ``db``: every storage adapter, use case and read port, wired. ``clock``:
    the pages' present (default: the reactor). ``read_db`` ([database] read_dsn, e.g. the hot
    standby): the heavy reads that tolerate replication lag (coil history, statistics)."""
    heavy = read_db or db
    audit = AuditLog(db)
    rules = InspectionRules(SettingsStore(db), audit)
    grading = Grading(GradingRecords(db), settings.quality, audit)
    models = ModelRegistry(db)
    layouts = load_layouts(settings.layout_path)
    reviews = ReviewReads(db)
    peer_images = PeerImages(reactor, settings.image_hosts, settings.tls_ca_file)
    uses = UseCases(
        accounts=Accounts(AccountStore(db), SessionStore(db), audit, settings.policy, threads.deferToThread),
        alerts=Alerts(AlertStore(db), audit),
        rules=rules,
        reviews=DefectReviews(DefectReviewStore(db), rules, audit, grading),
        deployment=ModelDeployment(models, audit),
        registration=ModelRegistration(models, audit),
        audit=audit,
        probe=DatabaseProbe(db),
        events=EventFeed(db),
        dashboard=DashboardReads(db),
        coils=CoilReads(db),
        history=CoilHistory(heavy),
        statistics=Statistics(heavy),
        models=models,
        rejected_telegrams=RejectedTelegrams(PgRejectedTelegrams(db), layouts, clock or reactor),
        dead_letters=DeadLetters(PgDeadLetters(db), layouts, clock or reactor),
        tracking=TrackingReads(db),
        grading=grading,
        quality=QualityAdmin(QualityAdminRecords(db), audit),
        reports=CoilReports(CoilReportReads(db), PdfRenderer(settings.report, settings.image_root, peer_images),
                            clock or reactor),
        accuracy=ReviewAccuracy(reviews, settings.report.accuracy_min_reviews),
        training=TrainingExport(reviews, TrainingArchive(settings.image_root), audit, settings.report.export_max_images),
        peer_images=peer_images,
    )
    return UI(reactor, settings, uses, clock)


def makeService(options) -> service.MultiService:  # noqa: N802 (twistd's name)
    from twisted.internet import reactor

    settings: UISettings = options["settings"]
    db = Database(reactor, options["dsn"], options["pool_size"])
    read_db = Database(reactor, options["read_dsn"], options["pool_size"]) if options.get("read_dsn") else None
    ui = compose_ui(reactor, settings, db, read_db=read_db)
    top = service.MultiService()
    _Database(db).setServiceParent(top)
    if read_db is not None:
        _Database(read_db).setServiceParent(top)
    _Housekeeping(ui).setServiceParent(top)
    _StatsRollup(db, settings.stats_refresh_seconds, reactor).setServiceParent(top)
    strports.service(settings.listen, site(ui)).setServiceParent(top)
    log.info("UI listening on {listen}, orchestrator at {url}", listen=settings.listen, url=ui.orchestrator.base_url)
    return top
