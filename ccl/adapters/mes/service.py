"""The parts of ccl-mes that are services: the pipeline's start and stop, the database pool,
the MES listener and the status listener. ``ccl.services.mes.makeService`` puts them
together.

Start-up order matters: the journal is recovered (torn tail cut, records on disk handed to
the writer) before the listener opens, so replayed records always precede new ones.
Shutdown runs the other way: the listener closes first with its connections, the journal
finishes its last write, the writer stops after its batch in flight (what it did not apply
stays in the journal for the next start); the database pool closes once the services using
it (forwarding to 고기원, the link status) have stopped.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web import server

from ccl.adapters.gokiwon.service import ForwardingService
from ccl.adapters.mes.links import LinkTracker
from ccl.adapters.mes.receiver import MesReceiverFactory
from ccl.adapters.runtime import tune_interpreter
from ccl.adapters.storage.journal import Journal
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.adapters.web.status import status_resource
from ccl.application.mes_pipeline import MesPipeline
from ccl.application.store_telegrams import TelegramWriter
from ccl.config import Config
from ccl.domain.metrics import Registry

log = Logger()

#: Least seconds between the starts of two writer transactions under sustained load (an
#: idle writer commits at once; see TelegramWriter): at most 1/WRITE_INTERVAL commits/s.
WRITE_INTERVAL = 0.01


@attrs.frozen
class MesSettings:
    """Everything the MES service reads from the configuration, checked up front."""

    dsn: str
    pool_size: int
    journal_dir: Path
    listen: str
    status_listen: str
    reply_ack: bool
    line_code: str
    journal_fsync: bool
    journal_segment_bytes: int
    idle_timeout: float
    max_connections: int
    write_batch: int
    layout_path: str | None

    @classmethod
    def from_config(cls, config: Config, dsn: str) -> MesSettings:
        return cls(
            dsn=dsn,
            pool_size=config.get_int("database", "pool_size", 1, 64),
            journal_dir=config.get_path("paths", "var") / "journal",
            listen=config.get_endpoint("mes", "listen"),
            status_listen=config.get_endpoint("mes", "status_listen"),
            reply_ack=config.get_bool("mes", "reply_ack"),
            line_code=config.get("mes", "line_code"),
            journal_fsync=config.get_bool("mes", "journal_fsync"),
            journal_segment_bytes=config.get_int("mes", "journal_segment_mb", 1, 4096) << 20,
            idle_timeout=config.get_float("mes", "idle_timeout", 0.1, 86400),
            max_connections=config.get_int("mes", "max_connections", 1, 10000),
            write_batch=config.get_int("mes", "write_batch", 1, 100000),
            layout_path=config.get("mes", "layout") or None,
        )


class PipelineService(service.Service):
    """Runs the MES pipeline: recovers the journal and starts the writer when started (the
    first service of ccl-mes, before the listener); stops them, and the writer's store, last."""

    name = "pipeline"

    def __init__(self, pipeline: MesPipeline, store: PostgresProcessStore) -> None:
        self.pipeline = pipeline
        self.store = store

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        tune_interpreter()  # garbage collector and GIL switch interval, see runtime.py
        self.store.start()
        replayed = self.pipeline.start()  # synchronous: nothing listens yet
        log.info("MES pipeline: journal {id} with {count} records to replay",
                 id=self.pipeline.journal.journal_id, count=replayed)

    @defer.inlineCallbacks
    def stopService(self):  # noqa: N802
        super().stopService()
        yield self.pipeline.stop()
        self.store.stop()


class DatabaseService(service.MultiService):
    """The txpostgres pool, parent of the services that use it: it starts connecting before
    they start (they wait for ``db.when_ready()`` where they need it) and closes only once they
    have all stopped (their last writes done or given up)."""

    name = "database"

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db

    def startService(self) -> None:  # noqa: N802
        self.db.start()  # never fails: a database that is down is connected to when it comes up
        super().startService()

    @defer.inlineCallbacks
    def stopService(self):  # noqa: N802
        yield super().stopService()
        self.db.close()


class ReceiverService(StreamServerEndpointService):
    """The MES listener. At stop it also drops the open connections, so nothing more reaches
    the journal while it closes (replies not yet sent go with them; the MES sends those again)."""

    name = "mes"

    def __init__(self, reactor, description: str, factory: MesReceiverFactory) -> None:
        super().__init__(endpoints.serverFromString(reactor, description), factory)
        self._raiseSynchronously = True  # a port that cannot be had stops start-up, as strports does

    def stopService(self):  # noqa: N802
        stopped = super().stopService()
        for connection in list(self.factory.connections):
            connection.transport.loseConnection()
        return stopped


class StatusService(StreamServerEndpointService):
    """``/health`` and ``/metrics`` of ccl-mes on ``[mes] status_listen``."""

    name = "status"

    def __init__(self, reactor, description: str, registry: Registry, health: MesHealth) -> None:
        site = server.Site(status_resource(registry, health))
        site.displayTracebacks = False
        super().__init__(endpoints.serverFromString(reactor, description), site)
        self._raiseSynchronously = True
        self.registry = registry
        self.health = health


@attrs.frozen
class MesHealth:
    """The ``/health`` of ccl-mes: the journal, the writer, the MES links, forwarding."""

    journal: Journal
    writer: TelegramWriter
    links: LinkTracker
    forwarding: ForwardingService | None  # None: forwarding to 고기원 is off

    def __call__(self) -> dict:
        journal, writer = self.journal, self.writer
        database = "ok" if writer.database_ok else "unavailable"
        # Journal failing: nothing can be ACKed, the link is down. Database away: the link
        # works and PostgreSQL catches up later.
        status = "down" if journal.last_error else "ok" if database == "ok" else "degraded"
        return {
            "service": "mes-tcp-service",
            "status": status,
            "database": database,
            "database_error": None if database == "ok" else writer.last_error,
            "journal": {"id": journal.journal_id, "backlog": writer.backlog, "error": journal.last_error,
                        "last_durable": journal.last_durable, "applied_upto": writer.applied_upto,
                        "segments": journal.segment_count, "fsync": journal.fsync},
            "journal_writes": _recent(journal.write_seconds, journal.batch_sizes),
            "last_commit_at": writer.last_commit_at,
            **self.links.snapshot(),
            "gokiwon": self.forwarding.health() if self.forwarding is not None else {"enabled": False},
        }


def _recent(seconds, sizes) -> dict:
    """Recent journal batch writes: how long write + fsync took (ms) and records per batch."""
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)

    def at(p):
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 3)

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 3),
            "records_per_batch": round(sum(sizes) / len(sizes), 1)}
