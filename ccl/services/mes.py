"""twistd ccl-mes: the MES telegram service (port 9304), assembled.

``makeService`` builds the MES pipeline (journal -> writer -> forwarders, see
ccl/application/mes_pipeline.py) and plugs the outside world into it, in start order:
the pipeline, the database pool with what uses it (link status, forwarding to 고기원 and its
ACK link), the MES listener, the status listener. All settings come from the configuration
(CCL_CONFIG and CCL_* variables); a wrong one stops start-up with a message naming it, never
a traceback.
"""

from __future__ import annotations

from twisted.application import service
from twisted.application.internet import TimerService
from twisted.logger import Logger
from twisted.python import usage

from ccl.adapters.gokiwon.service import ForwardingService, GokiwonSettings, channel_forwarders
from ccl.adapters.gokiwon.store import PgOutboxStore
from ccl.adapters.mes import service as mes_service
from ccl.adapters.mes.links import LinkTracker
from ccl.adapters.mes.receiver import MesReceiverFactory
from ccl.adapters.mes.service import (
    DatabaseService, MesHealth, MesSettings, PipelineService, ReceiverService, StatusService,
)
from ccl.adapters.storage.forwarding_lease import AdvisoryLease
from ccl.adapters.storage.journal import Journal
from ccl.adapters.storage.localdb import resolve_dsn
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.application.mes_pipeline import MesPipeline
from ccl.application.store_telegrams import TelegramWriter
from ccl.config import ConfigError, load_config
from ccl.domain.metrics import Registry
from ccl.domain.telegrams import LayoutError, load_layouts

log = Logger()

#: Seconds between two copies of the MES links' state into link_status.
LINK_SAVE_INTERVAL = 5.0


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Receive MES telegrams on [mes] listen, journal them (fsync) before the ACK, apply "
                "them to PostgreSQL in order, forward them to 고기원 ([gokiwon]) with its ACKs on "
                "[mes] ack_listen, serve /health and /metrics on [mes] status_listen. "
                "Settings: CCL_CONFIG and CCL_<SECTION>_<KEY> variables (see ccl/data/ccl.ini).")

    def postOptions(self):  # noqa: N802 (Twisted's name)
        try:
            config = load_config()
            self["settings"] = MesSettings.from_config(config, resolve_dsn(config))
            self["layouts"] = load_layouts(self["settings"].layout_path)
            self["gokiwon"] = GokiwonSettings.from_config(config, self["layouts"])
        except ConfigError as error:
            raise usage.UsageError(str(error)) from None
        except LayoutError as error:
            raise usage.UsageError(f"[mes] layout: {error}") from None


def makeService(options, reactor=None) -> service.MultiService:  # noqa: N802 (twistd's name)
    """ccl-mes from ``options`` ("settings": MesSettings, "layouts": Layouts, "gokiwon":
    GokiwonSettings). Children start in the order added and stop the other way round."""
    if reactor is None:
        from twisted.internet import reactor
    settings, layouts, gokiwon = options["settings"], options["layouts"], options["gokiwon"]
    mes = service.MultiService()
    mes.setName("ccl-mes")
    registry = Registry()  # every part's metrics, on /metrics
    db = Database(reactor, settings.dsn, settings.pool_size)

    # The pipeline: the journal (on disk before any ACK) -> the writer (PostgreSQL, in journal
    # order) -> one forwarder per 고기원 channel (from the outbox, or live from the journal).
    # Its service comes first: the journal is recovered before anything listens.
    journal = Journal(reactor, settings.journal_dir, fsync=settings.journal_fsync,
                      segment_bytes=settings.journal_segment_bytes)
    store = PostgresProcessStore(reactor, settings.dsn)
    writer = TelegramWriter(store, layouts, reactor, batch_size=settings.write_batch, registry=registry,
                            min_interval=mes_service.WRITE_INTERVAL)
    outbox = PgOutboxStore(reactor, db)
    forwarders = channel_forwarders(reactor, outbox, gokiwon, registry) if gokiwon.enabled else {}
    # With the forwarding lease (two plant servers) the other ccl-mes fills the outbox too:
    # forward from the outbox only, never live from this journal.
    pipeline = MesPipeline(journal, writer, forwarders, layouts, live=not (gokiwon.enabled and gokiwon.lease))
    PipelineService(pipeline, store).setServiceParent(mes)

    # The database pool and what uses it: the MES links' rows in link_status, and forwarding
    # to 고기원 (connections, the ACK link on [mes] ack_listen, the outbox poll).
    database = DatabaseService(db)
    database.setServiceParent(mes)
    links = LinkTracker(reactor, listener="mes", registry=registry, db=db)
    saving = TimerService(LINK_SAVE_INTERVAL, links.save)
    saving.clock = reactor
    saving.setServiceParent(database)
    forwarding = None
    if gokiwon.enabled:
        # Two plant servers: only the holder of the forwarding lease talks to 고기원.
        lease = AdvisoryLease(reactor, settings.dsn, interval=gokiwon.lease_interval) if gokiwon.lease else None
        forwarding = ForwardingService(reactor, db, outbox, pipeline, layouts, gokiwon, registry, lease)
        forwarding.setServiceParent(database)
    else:
        log.warn("forwarding to 고기원 is disabled ([gokiwon] enabled = false): outbox entries stay pending")

    # MES in: telegrams on [mes] listen go to the journal, and are ACKed once on disk.
    receiver = MesReceiverFactory(
        reactor, layouts, journal, links=links, registry=registry, listener="mes", reply_ack=settings.reply_ack,
        line_code=settings.line_code, idle_timeout=settings.idle_timeout, max_connections=settings.max_connections)
    ReceiverService(reactor, settings.listen, receiver).setServiceParent(mes)

    # Status: /health and /metrics on [mes] status_listen.
    health = MesHealth(journal, writer, links, forwarding)
    StatusService(reactor, settings.status_listen, registry, health).setServiceParent(mes)
    log.info("ccl-mes: MES on {listen}, status on {status}, forwarding to 고기원 {forwarding}",
             listen=settings.listen, status=settings.status_listen,
             forwarding=f"at {gokiwon.host}" if gokiwon.enabled else "off")
    return mes
