"""Forwarding to 고기원: the connections, the ACK link and the status of the forwarders.

The forwarders themselves (``ChannelForwarder``, one per channel of the layout file:
schedule, wpd, speed) belong to the MES pipeline (ccl.application.mes_pipeline), which feeds
them from the journal and the writer; ``channel_forwarders`` makes them. This service plugs
the outside world into them: per channel the ``ClientService`` of its connection to 고기원;
the ACK listener on ``[mes] ack_listen`` (answers go to the forwarder of their TC); and a slow
timer that looks for pending entries the wake-ups missed, refreshes the backlog figures and
writes ``link_status`` rows ``gokiwon-<channel>`` and ``gokiwon-ack``. It tells the pipeline
when the outbox can be read (the database pool is connected) and when it can no longer be.
"""

from __future__ import annotations

import attrs
from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet import defer, endpoints
from twisted.logger import Logger

from ccl.adapters.gokiwon.acks import LISTENER, AckFactory
from ccl.adapters.gokiwon.sender import ChannelFactory, RetryClock, channel_client
from ccl.adapters.gokiwon.store import PgOutboxStore
from ccl.adapters.storage.postgres import Database
from ccl.adapters.tls import ca_file, client_options
from ccl.application.forwarding import ChannelForwarder, ForwardingSettings
from ccl.application.mes_pipeline import MesPipeline
from ccl.config import Config, ConfigError
from ccl.domain.metrics import Registry
from ccl.domain.telegrams import Layouts
from ccl.ports import IForwardingLease, IOutboxStore

log = Logger()


@attrs.frozen
class GokiwonSettings:
    host: str
    ports: dict[str, int]
    ack_listen: str
    enabled: bool = True
    require_ack: bool = True
    ack_timeout: float = 10.0
    window: int = 16
    alive_interval: float = 30.0
    retry_initial: float = 1.0
    retry_max: float = 2.0
    drain_rate: float = 5000.0
    poll_interval: float = 2.0
    line_code: str = "CCL1"
    idle_timeout: float = 60.0
    #: Connect over TLS, verifying 고기원's certificate for ``host`` against ``ca_file`` (None: system store).
    tls: bool = False
    ca_file: str | None = None
    #: Two plant servers: forward only while holding the PostgreSQL advisory lock (the
    #: forwarding lease), checked every ``lease_interval`` seconds.
    lease: bool = False
    lease_interval: float = 1.0

    @classmethod
    def from_config(cls, config: Config, layouts: Layouts) -> "GokiwonSettings":
        ports = {}
        for channel in layouts.channels:
            try:
                ports[channel] = config.get_int("gokiwon", f"{channel}_port", 1, 65535)
            except ConfigError:
                raise ConfigError(f"the layout file forwards to channel {channel!r} but [gokiwon] has no "
                                  f"{channel}_port setting") from None
        g = "gokiwon"
        return cls(
            host=config.get(g, "host"), ports=ports, ack_listen=config.get_endpoint("mes", "ack_listen"),
            enabled=config.get_bool(g, "enabled"), require_ack=config.get_bool(g, "require_ack"),
            ack_timeout=config.get_float(g, "ack_timeout", 0.1, 3600), window=config.get_int(g, "window", 1, 1000),
            alive_interval=config.get_float(g, "alive_interval", 0.1, 3600),
            retry_initial=config.get_float(g, "retry_initial", 0.01, 3600),
            retry_max=config.get_float(g, "retry_max", 0.01, 3600),
            drain_rate=config.get_float(g, "drain_rate", 1, 1_000_000),
            poll_interval=config.get_float(g, "poll_interval", 0.1, 3600),
            line_code=config.get("mes", "line_code"),
            idle_timeout=config.get_float("mes", "idle_timeout", 1, 3600),
            tls=config.get_bool(g, "tls"), ca_file=ca_file(config), lease=config.get_bool(g, "lease"),
            lease_interval=config.get_float(g, "lease_interval", 0.1, 60))


class _Listening(service.Service):
    """Listen on an endpoint string; ``listening`` fires with the port (tests read its number).

    A port that cannot be had (another process holds 9306) is logged as an error and tried
    again every ``retry`` seconds: the MES link must not die of it, and it heals by itself.
    """

    def __init__(self, reactor, description: str, factory, retry: float = 5.0) -> None:
        self._reactor, self._description, self._factory, self._retry = reactor, description, factory, retry
        self.port = None
        self.listening: defer.Deferred = defer.Deferred()
        self._again = None

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        self._listen()

    def _listen(self) -> None:
        self._again = None
        if not self.running:
            return

        def up(port):
            if not self.running:
                return port.stopListening()
            self.port = port
            log.info("고기원 ACK link listening on {address}", address=port.getHost())
            self.listening.callback(port)

        def failed(failure):
            log.error("cannot listen on {d} for 고기원's ACKs: {e}; trying again in {s}s",
                      d=self._description, e=failure.getErrorMessage(), s=self._retry)
            if self.running:
                self._again = self._reactor.callLater(self._retry, self._listen)

        endpoints.serverFromString(self._reactor, self._description).listen(self._factory).addCallbacks(up, failed)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._again is not None and self._again.active():
            self._again.cancel()
        self._factory.close_all()
        if self.port is not None:
            port, self.port = self.port, None
            self.listening = defer.Deferred()
            return port.stopListening()
        return None


def channel_forwarders(clock, outbox: IOutboxStore, settings: GokiwonSettings,
                       registry: Registry) -> dict[str, ChannelForwarder]:
    """One forwarder per channel of ``settings`` on the ``outbox``, counting what it delivers,
    sends again and sees refused into ``registry``."""
    counters = {
        "delivered": registry.counter("gokiwon_delivered_total",
                                      "Outbox entries 고기원 accepted (or written, without ACKs)"),
        "resent": registry.counter("gokiwon_resent_total",
                                   "Outbox entries sent again (no ACK in time, lost connection, restart)"),
        "refused": registry.counter("gokiwon_refused_total", "Outbox entries 고기원 refused (4901), kept as refused"),
    }

    def count(name: str, channel: str) -> None:
        counters[name].inc(channel=channel)

    rules = ForwardingSettings(window=settings.window, ack_timeout=settings.ack_timeout,
                               require_ack=settings.require_ack, drain_rate=settings.drain_rate)
    return {channel: ChannelForwarder(channel, outbox, clock, rules, count=count) for channel in settings.ports}


class ForwardingService(service.MultiService):
    def __init__(self, reactor, db: Database, outbox: PgOutboxStore, pipeline: MesPipeline, layouts: Layouts,
                 settings: GokiwonSettings, registry: Registry, lease: IForwardingLease | None = None) -> None:
        """``outbox``: the PgOutboxStore the pipeline's forwarders read; ``registry``: the one
        ``channel_forwarders`` counted into; ``lease``: with two plant servers, who forwards
        (None: this one, always)."""
        super().__init__()
        self._lease = lease
        #: The links to 고기원 (its channel ports, the ACK listener) and the outbox poll. With a
        #: lease they run only while it is held: 고기원 sees one sender, and sends its ACKs
        #: to the one ccl-mes that listens for them.
        self.link = service.MultiService()
        self.setName("gokiwon")
        self._reactor = reactor
        self._layouts = layouts
        self.settings = settings
        self._db = db
        self.store = outbox
        self._pipeline = pipeline
        self.registry = registry
        self._backlog: dict[str, tuple[int, float | None]] = {}
        self._settled_at_poll: dict[str, int] = {}
        self._ready = False  # the database pool is connected and the forwarders run
        self.peer_last_seen: float | None = None
        self.peer_alive_count: int | None = None
        self.forwarders: dict[str, ChannelForwarder] = pipeline.forwarders
        self._metrics()
        self.factories: dict[str, ChannelFactory] = {}
        self._retry_clocks: dict[str, RetryClock] = {}
        for channel, port in settings.ports.items():
            factory = ChannelFactory(reactor, self.forwarders[channel], layouts, line_code=settings.line_code,
                                     alive_interval=settings.alive_interval, changed=self._link_changed,
                                     connected=self._partner_back)
            self.factories[channel] = factory
            client, self._retry_clocks[channel] = channel_client(
                reactor, factory, settings.host, port, retry_initial=settings.retry_initial,
                retry_max=settings.retry_max,
                tls=client_options(settings.host, settings.ca_file) if settings.tls else None)
            client.setServiceParent(self.link)
        self.acks = AckFactory(reactor, layouts, on_ack=self.on_ack, on_alive=self.on_alive, reject=self._reject,
                               changed=self._ack_link_changed, idle_timeout=settings.idle_timeout)
        self.ack_listener = _Listening(reactor, settings.ack_listen, self.acks)
        self.ack_listener.setServiceParent(self.link)
        poll = TimerService(settings.poll_interval, self._poll)
        poll.clock = reactor
        poll.setServiceParent(self.link)

    # Life cycle --------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        if self._lease is None:
            self.link.startService()

        def connected(_):
            # Reading the outbox before the pool is connected would only fail.
            if not self.running:
                return
            if self._lease is None:
                self._lead()
            else:
                self._lease.start(self._lead, self._follow)
        self._db.when_ready().addCallback(connected)

    @property
    def leading(self) -> bool:
        """This ccl-mes forwards to 고기원 (always, without a lease)."""
        return self._ready

    def _lead(self) -> None:
        if not self.running:
            return
        if not self.link.running:
            self.link.startService()
        self._ready = True
        self._pipeline.start_forwarding()
        self._poll()

    def _follow(self) -> None:
        """The lease is lost: stop sending at once. What was sent and not answered is sent
        again by the new holder (at-least-once; 고기원 de-duplicates); answers already in
        are written first where the database still takes them."""
        self._ready = False
        self._pipeline.stop_forwarding()
        if self.link.running:
            self.link.stopService()
        self.store.flush().addErrback(lambda f: log.warn("lease lost with outbox updates unwritten ({e})",
                                                         e=f.getErrorMessage()))

    @defer.inlineCallbacks
    def stopService(self):  # noqa: N802
        if self._lease is not None:
            yield self._lease.stop()
        self._ready = False
        self._pipeline.stop_forwarding()
        if self.link.running:
            yield self.link.stopService()
        yield super().stopService()
        # What is not written now is sent again after the restart: nothing is lost either way,
        # so a database that is down does not hold the stop up for long.
        flushed = self.store.flush()
        flushed.addTimeout(2.0, self._reactor)
        try:
            yield flushed
        except Exception:
            log.warn("stopping with outbox updates unwritten; those entries will be sent again")
        self.store.close()
        yield self._write_links(connected_override=False)

    # Answers from 고기원 -------------------------------------------------------------------

    def on_ack(self, tc_code: str, sequence_no: int, result_code: str) -> None:
        self.peer_last_seen = self._reactor.seconds()
        layout = self._layouts.get(tc_code)
        forwarder = self.forwarders.get(layout.forward) if layout is not None and layout.forward else None
        if forwarder is None or not forwarder.ack(tc_code, sequence_no, result_code):
            self._unknown_acks.inc()
            log.warn("고기원 answered TC {tc} #{seq} with {code}, which matches nothing sent and unanswered; ignored",
                     tc=tc_code, seq=sequence_no, code=result_code)

    def on_alive(self, alive_count: int | None, now: float) -> None:
        self.peer_last_seen = now
        self.peer_alive_count = alive_count

    def _reject(self, now, peer, code, reason, tc_code, sequence_no, raw) -> None:
        self._ack_rejected.inc()
        log.warn("고기원 ACK link: rejected {n} bytes from {peer}: {reason} (code {code})",
                 n=len(raw), peer=peer, reason=reason, code=code)
        self.store.reject(received_at=now, peer=peer, listener=LISTENER, result_code=code, reason=reason,
                          tc_code=tc_code, sequence_no=sequence_no, raw=raw).addErrback(
            _unless_cancelled, "keeping a rejected telegram failed")

    # Status ------------------------------------------------------------------------------

    def _metrics(self) -> None:
        r = self.registry
        self._unknown_acks = r.counter("gokiwon_ack_unknown_total", "ACKs from 고기원 matching nothing in flight")
        self._ack_rejected = r.counter("gokiwon_ack_rejected_total", "Garbage or unexpected telegrams on the ACK link")

        def per_channel(fn):
            return lambda: {(("channel", ch),): v for ch, f in self.forwarders.items()
                            if (v := fn(ch, f)) is not None}

        r.gauge("gokiwon_connected", "1 while the channel's connection to 고기원 is up",
                per_channel(lambda ch, f: int(f.connected)))
        r.gauge("gokiwon_backlog", "Pending outbox entries of the channel", per_channel(lambda ch, f: self.backlog(ch)))
        r.gauge("gokiwon_oldest_pending_seconds", "Age of the channel's oldest pending entry",
                per_channel(lambda ch, f: self.oldest_pending_age(ch) or 0.0))
        r.gauge("gokiwon_in_flight", "Entries sent and not yet answered", per_channel(lambda ch, f: f.in_flight))
        r.gauge("gokiwon_last_ack_timestamp_seconds", "When 고기원 last answered an entry of the channel",
                per_channel(lambda ch, f: f.stats.last_ack_at))
        r.gauge("gokiwon_alive_sent", "Alive telegrams sent on the channel",
                per_channel(lambda ch, f: self.factories[ch].alive.alives_sent))
        r.gauge("gokiwon_ack_link_connections", "Connections 고기원 holds to our ACK port",
                lambda: self.acks.connections)
        r.gauge("gokiwon_peer_last_seen_timestamp_seconds", "When 고기원 last sent an ACK or alive",
                lambda: self.peer_last_seen or 0.0)

    def backlog(self, channel: str) -> int:
        """Pending entries: the database count of the last poll less what was settled since it
        was asked for, never less than what this process holds."""
        forwarder = self.forwarders[channel]
        held = forwarder.queued + forwarder.in_flight
        settled_since = self._settled(channel) - self._settled_at_poll.get(channel, 0)
        return max(held, self._backlog.get(channel, (0, None))[0] - settled_since)

    def _settled(self, channel: str) -> int:
        stats = self.forwarders[channel].stats
        return stats.delivered + stats.refused

    def oldest_pending_age(self, channel: str) -> float | None:
        candidates = [t for t in (self.forwarders[channel].oldest_loaded_at(),
                                  self._backlog.get(channel, (0, None))[1]) if t is not None]
        if not candidates or self.backlog(channel) == 0:
            return None
        return max(0.0, self._reactor.seconds() - min(candidates))

    def health(self) -> dict:
        """The forwarding part of the MES service's /health."""
        channels = {}
        for channel, forwarder in self.forwarders.items():
            stats = forwarder.stats
            channels[channel] = {
                "connected": forwarder.connected, "host": self.settings.host, "port": self.settings.ports[channel],
                "backlog": self.backlog(channel), "oldest_pending_age_s": self.oldest_pending_age(channel),
                "in_flight": forwarder.in_flight, "delivered": stats.delivered, "resent": stats.resent,
                "refused": stats.refused, "last_ack_at": stats.last_ack_at,
                "alive_sent": self.factories[channel].alive.alives_sent,
                "live": forwarder.live, "ack_rtt_ms": _percentiles(stats.ack_rtt),
            }
        all_up = all(f.connected for f in self.forwarders.values())
        if self._lease is not None and not self._lease.held:
            # The other plant server forwards: nothing here is expected to be connected.
            return {"enabled": True, "status": "ok", "lease": "standing by", "channels": channels}
        held = {"lease": "held"} if self._lease is not None else {}
        return {"enabled": True, "status": "ok" if all_up else "degraded", "require_ack": self.settings.require_ack,
                **held,
                "channels": channels,
                "ack_link": {"connections": self.acks.connections, "peer_last_seen": self.peer_last_seen,
                             "peer_alive_count": self.peer_alive_count}}

    def _poll(self) -> defer.Deferred | None:
        if not self._ready:
            return None
        for forwarder in self.forwarders.values():
            forwarder.rescan().addErrback(_unless_cancelled, "outbox rescan failed")
            if self._lease is not None:
                # The other plant server's writer commits without waking us: read its rows.
                forwarder.wake()

        settled_at_poll = {channel: self._settled(channel) for channel in self.forwarders}

        def got(backlog):
            self._backlog = backlog
            self._settled_at_poll = settled_at_poll
        refreshed = self.store.backlog().addCallbacks(got, lambda f: None)
        return refreshed.addCallback(lambda _: self._write_links())

    def _partner_back(self) -> None:
        """A connection to 고기원 was just made: channels waiting out their back-off try now
        (its backlog should not wait up to retry_max for each of them)."""
        for channel, clock in self._retry_clocks.items():
            if not self.forwarders[channel].connected and clock.try_now():
                log.info("{channel}: 고기원 is reachable again; reconnecting now", channel=channel)

    def _ack_link_changed(self) -> None:
        if self.acks.connections > 0 and self.running:
            self._partner_back()  # 고기원 connected to our ACK port: it is up
        self._link_changed()

    def _link_changed(self) -> None:
        if self.running and self._ready:
            self._write_links()

    def _write_links(self, connected_override: bool | None = None) -> defer.Deferred:
        writes = []
        for channel, forwarder in self.forwarders.items():
            stats = forwarder.stats
            details = {"port": self.settings.ports[channel], "backlog": self.backlog(channel),
                       "oldest_pending_age_s": self.oldest_pending_age(channel), "in_flight": forwarder.in_flight,
                       "delivered": stats.delivered, "resent": stats.resent, "refused": stats.refused,
                       "last_ack_at": stats.last_ack_at}
            connected = forwarder.connected if connected_override is None else connected_override
            writes.append(self.store.upsert_link(
                f"gokiwon-{channel}", kind="gokiwon-out", connected=connected,
                last_seen_at=stats.last_ack_at, alive_count=self.factories[channel].alive.alive_count,
                details=details))
        connected = self.acks.connections > 0 if connected_override is None else connected_override
        writes.append(self.store.upsert_link("gokiwon-ack", kind="gokiwon-ack", connected=connected,
                                             last_seen_at=self.peer_last_seen, alive_count=self.peer_alive_count,
                                             details={"listen": self.settings.ack_listen}))
        return defer.gatherResults(writes, consumeErrors=True).addErrback(lambda f: None)


def _percentiles(seconds) -> dict | None:
    """p50/p99/max in ms of recent ACK round trips (None before the first)."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    return {"p50": round(ordered[len(ordered) // 2] * 1000, 2),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


def _unless_cancelled(failure, what: str) -> None:
    if not failure.check(defer.CancelledError):
        log.failure(what, failure)
