"""What the composition roots of ccl-images and ccl-defects share: options, the database, the
service that owns it, health checks, and serving a built service."""

from __future__ import annotations

import attrs
from twisted.application import internet, service, strports
from twisted.internet import reactor
from twisted.logger import Logger
from twisted.python import usage
from twisted.web import server

from ccl.adapters.runtime import tune_interpreter
from ccl.adapters.storage.localdb import resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.sync_pool import SyncPool
from ccl.config import Config, ConfigError, load_config

log = Logger()


class Options(usage.Options):
    """``--listen`` over the configured endpoint; ``settings_type.from_config`` reads the rest."""

    optParameters = [["listen", "l", None, "endpoint to listen on (default: from the configuration)"]]
    settings_type: type

    def postOptions(self):  # noqa: N802 (twisted's name)
        try:
            self.config = load_config()
            self.settings = self.settings_type.from_config(self.config, listen=self["listen"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None


class Checks:
    """Health state refreshed in the background, so /health answers at once."""

    def __init__(self):
        self.database = "unknown"
        self.storage = "ok"
        self.storage_error = None

    def check_database(self, db: Database):
        def ok(_):
            self.database = "ok"

        def down(failure):
            self.database = "unavailable"

        return db.runQuery("SELECT 1").addCallbacks(ok, down)


def databases(config: Config, pool_size: int) -> tuple[Database, SyncPool]:
    """The txpostgres pool (requests) and the threaded psycopg2 pool (COPY, file-bound transactions)."""
    dsn = resolve_dsn(config)
    return Database(reactor, dsn, pool_size), SyncPool(reactor, dsn, size=2)


@attrs.frozen
class Built:
    """A built ingestion service, not yet started: tests run it in-process."""

    db: Database
    pool: SyncPool
    site: server.Site
    app: object
    #: (interval in seconds, job) of the background jobs
    jobs: list


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


def serve(built: Built, listen: str) -> service.MultiService:
    """The twistd service of a built ingestion service: its database, timers and listener."""
    top = IngestService(built.db, built.pool)
    for interval, job in built.jobs:
        internet.TimerService(interval, job).setServiceParent(top)
    strports.service(listen, built.site).setServiceParent(top)
    return top
