"""twistd ccl-ui: the web UI service (Klein app on ``[ui] listen``, default tcp:3000), composed."""

from __future__ import annotations

import datetime

from twisted.application import service, strports
from twisted.internet import task
from twisted.logger import Logger
from twisted.python import usage

from ccl.adapters.storage.localdb import resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.adapters.web.ui.site import site
from ccl.config import ConfigError, load_config

log = Logger()


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Web UI of the CCL plant server. Settings: [ui] in ccl/data/ccl.ini (CCL_UI_* variables)."

    def postOptions(self):  # noqa: N802 (twisted's name)
        from ccl.adapters.web.ui.app import check_config

        try:
            self["config"] = config = load_config()
            self["dsn"] = resolve_dsn(config)
            check_config(config)
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
        from twisted.internet import defer

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
        from ccl.adapters.storage.postgres import UNAVAILABLE
        from ccl.adapters.storage.ui_queries import rollup

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


def makeService(options) -> service.MultiService:  # noqa: N802 (twistd's name)
    from twisted.internet import reactor

    from ccl.adapters.web.ui.app import UI

    config = options["config"]
    db = Database(reactor, options["dsn"], config.get_int("database", "pool_size", 1, 64))
    ui = UI(reactor, config, db)
    listen = config.get_endpoint("ui", "listen")
    top = service.MultiService()
    _Database(db).setServiceParent(top)
    _Housekeeping(ui).setServiceParent(top)
    _StatsRollup(db, config.get_int("ui", "stats_refresh_seconds", 1, 86_400), reactor).setServiceParent(top)
    strports.service(listen, site(ui)).setServiceParent(top)
    log.info("UI listening on {listen}, orchestrator at {url}", listen=listen, url=ui.orchestrator.base_url)
    return top
