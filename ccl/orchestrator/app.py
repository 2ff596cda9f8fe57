"""Wiring of the orchestrator: monitor, control API, alert rules, database, its own log file."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from pathlib import Path

from twisted.application import service, strports
from twisted.internet import defer, task
from twisted.logger import ILogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher
from twisted.web.server import Site
from zope.interface import implementer

from ccl.adapters.backup.pgbackrest import BackupSettings, PgBackRest
from ccl.adapters.storage import partitions
from ccl.adapters.storage.localdb import local_cluster, resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.sync_pool import SyncPool
from ccl.config import Config
from ccl.domain.retention_settings import RetentionSettings
from ccl.orchestrator.alerts import AlertRules
from ccl.orchestrator.api import ControlAPI
from ccl.orchestrator.auth import load_or_create_token
from ccl.orchestrator.backup_watch import BackupWatch
from ccl.orchestrator.host import HostSampler
from ccl.orchestrator.logfiles import RotatingLog
from ccl.orchestrator.monitor import Orchestrator
from ccl.orchestrator.retention_job import RetentionJob
from ccl.orchestrator.services import ChildSpec, children
from ccl.orchestrator.settings import Settings

log = Logger()


@implementer(ILogObserver)
class RotatingLogObserver:
    """twisted.logger events as classic text lines in a rotated file (orchestrator.log)."""

    def __init__(self, rotating: RotatingLog):
        self.rotating = rotating

    def __call__(self, event) -> None:
        text = formatEventAsClassicLogText(event)
        if text:
            self.rotating.write_lines([line.encode("utf-8") for line in text.rstrip("\n").split("\n")])


def orchestrator_log(settings: Settings) -> RotatingLog:
    return RotatingLog(settings.logs / "orchestrator.log", settings.log_max_bytes, settings.log_keep)


class OrchestratorService(service.Service):
    """Starts the parts in order and stops them in order, which a MultiService does not do
    (it stops all children at once): API first, then the alert loop and the host readings,
    then the children (services, then - once pending audit rows are written and the
    orchestrator's own connections are closed - the database), last the log observer."""

    def __init__(self, reactor, *, db: Database, monitor: Orchestrator, rules: AlertRules, api: ControlAPI,
                 web: service.Service, host: HostSampler, settings: Settings, observer: RotatingLogObserver | None,
                 backups: BackupWatch | None = None, retention: RetentionJob | None = None,
                 retention_pool: SyncPool | None = None):
        self._reactor = reactor
        self.db, self.monitor, self.rules, self.api, self.web, self.host = db, monitor, rules, api, web, host
        self.backups = backups
        self.retention, self._retention_pool = retention, retention_pool
        self.settings = settings
        self._observer = observer
        self._loop = task.LoopingCall(self._evaluate)
        self._loop.clock = reactor
        monitor.before_database_stop.append(self._before_database_stop)

    def _evaluate(self) -> None:
        self.rules.evaluate().addErrback(lambda failure: log.failure("alert rules failed", failure))

    def startService(self):  # noqa: N802
        super().startService()
        if self._observer is not None:
            globalLogPublisher.addObserver(self._observer)
        self.db.start()
        self.monitor.startService()
        self.host.start()
        if self.backups is not None:
            self.backups.start()
        self._loop.start(self.settings.alert_interval, now=False)
        if self.retention is not None:
            self._retention_pool.start()
            self.retention.start()
        self.web.startService()

    @defer.inlineCallbacks
    def _before_database_stop(self):
        yield self.api.drain()
        yield self.rules.idle()
        if self.retention is not None:
            yield self.retention.stop()
            self._retention_pool.stop()
        self.db.close()

    @defer.inlineCallbacks
    def stopService(self):  # noqa: N802
        super().stopService()
        yield self.web.stopService()
        if self._loop.running:
            self._loop.stop()
        yield self.rules.idle()
        if self.backups is not None:
            self.backups.stop()
        yield self.host.stop()
        yield self.monitor.stopService()
        yield self._before_database_stop()
        self.monitor.close_logs()
        log.info("orchestrator stopped; no child left running")
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)


class _QuietSite(Site):
    """No access log: status polls would drown orchestrator.log; control actions go to audit_logs."""

    def log(self, request) -> None:
        pass


def volumes(config: Config, settings: Settings) -> dict[str, Path]:
    """Volumes watched for the disk rule: the image root and the database volume."""
    found = {"images": config.get_path("images", "root")}
    if settings.db_volume:
        found["database"] = Path(settings.db_volume).absolute()
    elif not config.get("database", "dsn"):
        found["database"] = local_cluster(config).datadir
    return found


def host_volumes(config: Config, settings: Settings) -> dict[str, Path]:
    """Volumes in the host figures: those of the disk rule and the MES journal's (under [paths] var)."""
    found = volumes(config, settings)
    found["journal"] = settings.var / "journal"
    return found


def backup_watch(config: Config, reactor) -> BackupWatch:
    """Readings of the local cluster's backups (the stale rule stays quiet until `ccl backup setup`)."""
    backup = BackupSettings.from_config(config)
    backrest = PgBackRest.of(config, local_cluster(config))

    def read():
        return backrest.info() if backrest.is_set_up() else None
    return BackupWatch(reactor, read, backup.check_interval, timedelta(hours=backup.max_age_hours))


def retention_job(config: Config, reactor, dsn: str, clock=None) -> tuple[RetentionJob | None, SyncPool | None]:
    """The daily retention run (``[retention] automatic``) on a one-thread psycopg2 pool of its own;
    ``clock`` (default the reactor) says when a day has passed."""
    settings = RetentionSettings.from_config(config)
    if not settings.automatic:
        return None, None
    pool = SyncPool(reactor, dsn, size=1, name="db-retention")

    def run(today: date, now: datetime):
        work = functools.partial(partitions.run_retention, actor="orchestrator", now=now)
        return pool.run(work, today, settings.keep_months)
    return RetentionJob(clock or reactor, run), pool


def make_service(config: Config, reactor=None, specs: list[ChildSpec] | None = None,
                 log_file: RotatingLog | None = None, attach_log: bool = True) -> OrchestratorService:
    """The whole orchestrator as one service; ``specs`` replaces the service table (tests).

    ``attach_log``: add the orchestrator.log observer while running (the plugin); ``ccl.tac``
    gives it to twistd as the application's log observer instead.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = Settings.from_config(config)
    dsn = resolve_dsn(config)
    specs = children(config) if specs is None else specs
    token = load_or_create_token(settings.token, settings.var)
    log_file = log_file or orchestrator_log(settings)

    db = Database(reactor, dsn, size=2)
    monitor = Orchestrator(reactor, specs, settings)
    watched = volumes(config, settings)
    host = HostSampler(reactor, host_volumes(config, settings), settings.host_interval)
    backups = backup_watch(config, reactor)
    rules = AlertRules(reactor, monitor, db, settings, watched, disks=host.disks, backups=backups)
    retention, retention_pool = retention_job(config, reactor, dsn)

    def on_event(event, child):
        if event == "fatal":  # raise the alert now, not at the next evaluation
            rules.evaluate().addErrback(lambda failure: log.failure("alert rules failed", failure))
    monitor.listeners.append(on_event)

    api = ControlAPI(reactor, monitor, db, token, watched, host=host, orchestrator_log=log_file)
    site = _QuietSite(api.resource())
    site.displayTracebacks = False
    web = strports.service(settings.listen, site, reactor=reactor)
    log.info("orchestrator: {count} services, control API on {listen}",
             count=len(specs), listen=settings.listen)
    return OrchestratorService(reactor, db=db, monitor=monitor, rules=rules, api=api, web=web, host=host,
                               settings=settings, backups=backups, retention=retention,
                               retention_pool=retention_pool,
                               observer=RotatingLogObserver(log_file) if attach_log else None)
