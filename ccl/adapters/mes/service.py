"""The MES service: database, journal, writer, receiver and status, as one MultiService.

Start-up order matters: the journal is recovered (torn tail cut, records on disk handed to
the writer) before the listener opens, so replayed records always precede new ones.
Shutdown runs the other way: the listener closes first, the journal finishes its last
write, the writer stops after its batch in flight (what it did not apply stays in the
journal for the next start).
"""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.application import service, strports
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server

from ccl.adapters.mes.links import LinkTracker
from ccl.adapters.mes.receiver import MesReceiverFactory
from ccl.adapters.runtime import tune_interpreter
from ccl.adapters.storage.journal import Journal
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.adapters.web.status import status_resource
from ccl.application.store_telegrams import TelegramWriter
from ccl.config import Config
from ccl.domain.metrics import Registry
from ccl.domain.telegrams import Layouts, load_layouts

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


class _Startup(service.Service):
    """Journal recovery and the background parts, started before the listeners."""

    def __init__(self, mes: MesService):
        self.mes = mes

    def startService(self):  # noqa: N802
        super().startService()
        self.mes.start_core()

    def stopService(self):  # noqa: N802
        super().stopService()
        return self.mes.stop_core()


class MesService(service.MultiService):
    def __init__(self, reactor, settings: MesSettings, layouts: Layouts | None = None):
        super().__init__()
        self.setName("ccl-mes")
        self.reactor = reactor
        self.settings = settings
        self.layouts = layouts or load_layouts(settings.layout_path)
        self.registry = Registry()
        self.db = Database(reactor, settings.dsn, settings.pool_size)
        self.journal = Journal(reactor, settings.journal_dir, fsync=settings.journal_fsync,
                               segment_bytes=settings.journal_segment_bytes)
        self.links = LinkTracker(reactor, listener="mes", registry=self.registry)
        self.writer: TelegramWriter | None = None
        self.factory = MesReceiverFactory(
            reactor, self.layouts, self.journal, links=self.links, registry=self.registry, listener="mes",
            reply_ack=settings.reply_ack, line_code=settings.line_code, idle_timeout=settings.idle_timeout,
            max_connections=settings.max_connections)
        #: Run after each batch committed to PostgreSQL with the set of forward channels that
        #: got new forward_outbox rows (see TelegramWriter.on_committed). The forwarding
        #: senders append a callable here to wake up at once.
        self.on_committed: list = []
        #: Run after each committed batch, before on_committed, with its BatchOutcome and
        #: the journal number reached (see TelegramWriter.on_applied).
        self.on_applied: list = []
        #: More blocks of /health, by name (the forwarding to 고기원 adds "gokiwon").
        self.health_parts: dict = {}
        #: Callables returning Deferreds, awaited before the database pool closes at stop
        #: (the forwarding to 고기원 finishes its last outbox writes).
        self.before_db_close: list = []
        _Startup(self).setServiceParent(self)
        strports.service(settings.listen, self.factory, reactor=reactor).setServiceParent(self)
        site = server.Site(status_resource(self.registry, self.health))
        site.displayTracebacks = False
        strports.service(settings.status_listen, site, reactor=reactor).setServiceParent(self)

    def start_core(self) -> None:
        records = self.journal.open()  # synchronous: nothing listens yet
        self.journal.start()
        tune_interpreter()  # garbage collector and GIL switch interval, see runtime.py
        self.store = PostgresProcessStore(self.reactor, self.settings.dsn)
        self.store.start()
        self.writer = TelegramWriter(self.store, self.layouts, self.reactor,
                                     journal=self.journal.journal_id, release=self.journal.release,
                                     batch_size=self.settings.write_batch, registry=self.registry,
                                     min_interval=WRITE_INTERVAL)
        self.writer.on_committed = self.on_committed  # one shared list: hooks added later count
        self.writer.on_applied = self.on_applied
        self.writer.enqueue(records)
        self.journal.on_durable.append(self.writer.enqueue)
        self.db.start()
        self.writer.start()
        self.links.start_saving(self.db)
        log.info("MES service: journal {id} with {count} records to replay; listening on {listen}",
                 id=self.journal.journal_id, count=len(records), listen=self.settings.listen)

    @defer.inlineCallbacks
    def stop_core(self):
        self.links.stop_saving()
        # Replies not yet sent are dropped with their connection; the MES sends those again.
        for connection in list(self.factory.connections):
            connection.transport.loseConnection()
        yield self.journal.stop()
        if self.writer is not None:
            yield self.writer.stop()
            self.store.stop()
        yield defer.gatherResults([defer.maybeDeferred(f) for f in self.before_db_close], consumeErrors=True)
        self.db.close()

    def health(self) -> dict:
        writer = self.writer
        backlog = writer.backlog if writer else 0
        database = "ok" if writer and writer.database_ok else "unavailable"
        # Journal failing: nothing can be ACKed, the link is down. Database away: the link
        # works and PostgreSQL catches up later.
        status = "down" if self.journal.last_error else "ok" if database == "ok" else "degraded"
        return {
            "service": "mes-tcp-service",
            "status": status,
            "database": database,
            "database_error": None if database == "ok" else (writer.last_error if writer else None),
            "journal": {"id": self.journal.journal_id, "backlog": backlog, "error": self.journal.last_error,
                        "last_durable": self.journal.last_durable,
                        "applied_upto": writer.applied_upto if writer else None,
                        "segments": self.journal.segment_count, "fsync": self.journal.fsync},
            "journal_writes": _recent(self.journal.write_seconds, self.journal.batch_sizes),
            "last_commit_at": writer.last_commit_at if writer else None,
            **self.links.snapshot(),
            **{name: part() for name, part in self.health_parts.items()},
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
