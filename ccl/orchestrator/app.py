"""Wiring of the orchestrator: monitor, control API, alert rules, database, its own log file."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.application import service, strports
from twisted.internet import task
from twisted.logger import ILogObserver, Logger, formatEventAsClassicLogText, globalLogPublisher
from twisted.web.server import Site
from zope.interface import implementer

from ccl.adapters.storage.localdb import local_cluster, resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.config import Config
from ccl.orchestrator.alerts import AlertRules
from ccl.orchestrator.api import ControlAPI
from ccl.orchestrator.auth import load_or_create_token
from ccl.orchestrator.logfiles import RotatingLog
from ccl.orchestrator.monitor import Orchestrator
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


class _DatabaseService(service.Service):
    def __init__(self, db: Database):
        self.db = db

    def startService(self):  # noqa: N802
        super().startService()
        self.db.start()

    def stopService(self):  # noqa: N802
        super().stopService()
        self.db.close()


class _LogService(service.Service):
    """Adds the orchestrator.log observer while running (``twistd -n ccl-orchestrator``)."""

    def __init__(self, observer: RotatingLogObserver):
        self.observer = observer

    def startService(self):  # noqa: N802
        super().startService()
        globalLogPublisher.addObserver(self.observer)

    def stopService(self):  # noqa: N802
        super().stopService()
        globalLogPublisher.removeObserver(self.observer)


class _Loop(service.Service):
    def __init__(self, reactor, interval: float, work):
        self._loop = task.LoopingCall(self._run, work)
        self._loop.clock = reactor
        self._interval = interval

    @staticmethod
    def _run(work):
        d = work()
        d.addErrback(lambda failure: log.failure("periodic work failed", failure))
        return None

    def startService(self):  # noqa: N802
        super().startService()
        self._loop.start(self._interval, now=False)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._loop.running:
            self._loop.stop()


def volumes(config: Config, settings: Settings) -> dict[str, Path]:
    """Volumes watched for the disk rule: the image root and the database volume."""
    found = {"images": config.get_path("images", "root")}
    if settings.db_volume:
        found["database"] = Path(settings.db_volume).absolute()
    elif not config.get("database", "dsn"):
        found["database"] = local_cluster(config).datadir
    return found


def make_service(config: Config, reactor=None, specs: list[ChildSpec] | None = None,
                 log_file: RotatingLog | None = None, attach_log: bool = True) -> service.MultiService:
    """The whole orchestrator as one service; ``specs`` replaces the service table (tests)."""
    if reactor is None:
        from twisted.internet import reactor
    settings = Settings.from_config(config)
    dsn = resolve_dsn(config)
    specs = children(config) if specs is None else specs
    token = load_or_create_token(settings.token, settings.var)
    top = service.MultiService()

    log_file = log_file or orchestrator_log(settings)
    if attach_log:
        _LogService(RotatingLogObserver(log_file)).setServiceParent(top)

    db = Database(reactor, dsn, size=2)
    _DatabaseService(db).setServiceParent(top)

    monitor = Orchestrator(reactor, specs, settings)
    monitor.setName("monitor")
    monitor.before_database_stop.append(db.close)
    monitor.setServiceParent(top)

    watched = volumes(config, settings)
    rules = AlertRules(reactor, monitor, db, settings, watched)
    def on_event(event, child):
        if event == "fatal":  # raise the alert now, not at the next evaluation
            rules.evaluate().addErrback(lambda failure: log.failure("alert rules failed", failure))
    monitor.listeners.append(on_event)
    _Loop(reactor, settings.alert_interval, rules.evaluate).setServiceParent(top)

    api = ControlAPI(reactor, monitor, db, token, watched, orchestrator_log=log_file)
    site = Site(api.resource())
    site.displayTracebacks = False
    web = strports.service(settings.listen, site, reactor=reactor)
    web.setName("api")
    web.setServiceParent(top)

    top.monitor, top.api, top.rules, top.db, top.settings = monitor, api, rules, db, settings
    log.info("orchestrator: {count} services, control API on {listen}, pid {pid}",
             count=len(specs), listen=settings.listen, pid=os.getpid())
    return top
