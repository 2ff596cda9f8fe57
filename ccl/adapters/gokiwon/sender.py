"""The outgoing connection of one channel to 고기원 (schedule 9308, wpd 9309, speed 9310).

A ``ClientService`` keeps it up, reconnecting with capped exponential back-off. While
connected, the channel's ``ChannelForwarder`` writes through it and a 4999 alive goes out
every ``alive_interval`` seconds with a running count. 고기원 sends nothing on these
connections (its answers come on our ACK port); anything it does send is logged and dropped.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import endpoints, protocol, task
from twisted.logger import Logger, globalLogPublisher

from ccl.application.forwarding import ChannelForwarder
from ccl.domain.telegrams import PLANT_TZ, Layouts, encode_alive

log = Logger()

MAX_SEQUENCE = 999999
MAX_ALIVE_COUNT = 9999


@attrs.define
class AliveCounter:
    """Running alive count and our own sequence numbers for one channel (they survive reconnects)."""

    alive_count: int = 0
    sequence_no: int = 0
    alives_sent: int = 0

    def next(self) -> tuple[int, int]:
        self.alive_count = self.alive_count % MAX_ALIVE_COUNT + 1
        self.sequence_no = self.sequence_no % MAX_SEQUENCE + 1
        self.alives_sent += 1
        return self.alive_count, self.sequence_no


class ChannelProtocol(protocol.Protocol):
    def __init__(self, factory: "ChannelFactory") -> None:
        self._factory = factory
        self._alive: task.LoopingCall | None = None
        self._self_connected = False

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        peer = self.transport.getPeer()
        host = self.transport.getHost()
        if (getattr(peer, "host", None), getattr(peer, "port", None)) == (getattr(host, "host", 0),
                                                                          getattr(host, "port", 0)):
            # A TCP self-connect: nothing listened on a port in the ephemeral range and the
            # kernel picked that same port as our end. Telegrams written here would come
            # straight back to us, so never treat it as 고기원.
            log.warn("{channel}: connection to {port} reached ourselves (nothing listens there); dropping it",
                     channel=self._factory.forwarder.channel, port=getattr(peer, "port", "?"))
            self._alive = None
            self._self_connected = True
            self.transport.abortConnection()
            return
        log.info("{channel}: connected to 고기원 at {host}:{port}", channel=self._factory.forwarder.channel,
                 host=getattr(peer, "host", "?"), port=getattr(peer, "port", "?"))
        try:
            self.transport.setTcpNoDelay(True)  # one telegram, one segment, no Nagle wait
        except (AttributeError, OSError):
            pass
        self._alive = task.LoopingCall(self._send_alive)
        self._alive.clock = self._factory.reactor
        self._alive.start(self._factory.alive_interval, now=False)
        self._factory.forwarder.attach(self.transport.write)
        self._factory.changed()
        self._factory.connected()

    def _send_alive(self) -> None:
        count, sequence = self._factory.alive.next()
        self.transport.write(encode_alive(
            self._factory.layouts, alive_count=count, line_code=self._factory.line_code, sequence_no=sequence,
            sent_at=datetime.datetime.fromtimestamp(self._factory.reactor.seconds(), PLANT_TZ)))

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        log.debug("{channel}: ignoring {n} bytes from 고기원 on the forwarding connection",
                  channel=self._factory.forwarder.channel, n=len(data))

    def connectionLost(self, reason) -> None:  # noqa: N802
        if self._self_connected:
            return
        if self._alive is not None and self._alive.running:
            self._alive.stop()
        self._factory.forwarder.detach()
        log.info("{channel}: connection to 고기원 lost ({reason})", channel=self._factory.forwarder.channel,
                 reason=reason.getErrorMessage())
        self._factory.changed()


class ChannelFactory(protocol.Factory):
    def __init__(self, reactor, forwarder: ChannelForwarder, layouts: Layouts, *, line_code: str,
                 alive_interval: float, changed: Callable[[], None],
                 connected: Callable[[], None] = lambda: None) -> None:
        self.reactor = reactor
        self.forwarder = forwarder
        self.layouts = layouts
        self.line_code = line_code
        self.alive_interval = alive_interval
        self.alive = AliveCounter()
        self.changed = changed
        self.connected = connected  # a connection to 고기원 was just made

    def buildProtocol(self, addr):  # noqa: N802
        return ChannelProtocol(self)


class RetryClock:
    """The clock a channel's ClientService waits on between attempts, with a way to cut the
    wait short: when one channel (or 고기원's ACK link) shows 고기원 is back, the others try
    at once instead of finishing their back-off."""

    def __init__(self, reactor) -> None:
        self._reactor = reactor
        self._waiting = None

    def seconds(self) -> float:
        return self._reactor.seconds()

    def callLater(self, delay, f, *args, **kwargs):  # noqa: N802 (IReactorTime)
        self._waiting = self._reactor.callLater(delay, f, *args, **kwargs)
        return self._waiting

    @property
    def waiting(self) -> bool:
        """A retry is scheduled and not yet made."""
        return self._waiting is not None and self._waiting.active()

    def try_now(self) -> bool:
        """Retry at once if a retry is being waited for; True if one was."""
        if self.waiting:
            self._waiting.reset(0)
            return True
        return False


def _quiet_retries(event: dict) -> None:
    # ClientService logs each retry at info level; a short retry_max would fill the log
    # during a long outage. The first few of each outage pass, then one in 30.
    attempt = event.get("attempt")
    if not isinstance(attempt, int) or attempt <= 3 or attempt % 30 == 0:
        globalLogPublisher(event)


class _ChannelClientService(ClientService):
    _log = Logger(observer=_quiet_retries)


def channel_client(reactor, factory: ChannelFactory, host: str, port: int, *, retry_initial: float,
                   retry_max: float, connect_timeout: float = 10.0,
                   tls=None) -> tuple[ClientService, RetryClock]:
    """A ClientService for one channel, and the clock to cut its retry wait short with.
    ``tls``: client TLS options (``ccl.adapters.tls.client_options``) to speak TLS over the
    connection; None: plain TCP, as 고기원 speaks by default.
    ClientService waits initialDelay * factor before its first retry, so initialDelay is
    retry_initial / factor to make the first retry come after retry_initial."""
    factor = 2.0
    endpoint = endpoints.HostnameEndpoint(reactor, host, port, timeout=connect_timeout)
    if tls is not None:
        endpoint = endpoints.wrapClientTLS(tls, endpoint)
    # A little jitter so three channels do not knock on 고기원's door in lock-step.
    policy = backoffPolicy(initialDelay=retry_initial / factor, maxDelay=retry_max, factor=factor,
                           jitter=lambda: random.random() * retry_initial * 0.25)
    clock = RetryClock(reactor)
    service = _ChannelClientService(endpoint, factory, retryPolicy=policy, clock=clock)
    service.setName(f"gokiwon-{factory.forwarder.channel}")
    return service, clock
