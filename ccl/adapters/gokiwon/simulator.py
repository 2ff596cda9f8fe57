"""A stand-in 고기원 server, for commissioning, demos and tests (``ccl simulate gokiwon``).

It listens on the three forwarding ports, cuts what arrives into telegrams, and answers
each process telegram on a connection of its own to our ACK port (``--ack-to``), as the
real 고기원 does: 4900 ACK, or 4901 NAK at ``nak_rate``; at ``drop_rate`` a telegram is
taken as lost (neither recorded nor answered); after every ``disconnect_every`` telegrams
on a connection it hangs up. Answers wait ``ack_delay`` seconds. Every received telegram
is handed to ``on_received`` (the CLI prints it or appends it to a record file), with a
flag when the same (TC, sequence number) came before, the way 고기원 de-duplicates.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, endpoints, protocol, task
from twisted.logger import Logger

from ccl.domain.telegrams import PLANT_TZ, Frame, Layouts, TelegramFramer, TelegramRejected, decode, encode_ack, \
    encode_alive

log = Logger()


@attrs.frozen
class Received:
    channel: str
    raw: bytes
    tc_code: str
    sequence_no: int
    at: float
    duplicate: bool
    answer: str  # "ack", "nak NN", "dropped", "unanswered", "alive", "bad: reason"


class _ChannelServer(protocol.Protocol):
    def __init__(self, sim: "GokiwonSimulator", channel: str) -> None:
        self._sim, self._channel = sim, channel
        self._framer = TelegramFramer(sim.layouts)
        self._count = 0

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        self._sim.connections[self._channel] = self._sim.connections.get(self._channel, 0) + 1
        self._sim.live.add(self)
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass

    def connectionLost(self, reason) -> None:  # noqa: N802
        self._sim.connections[self._channel] -= 1
        self._sim.live.discard(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        for item in self._framer.feed(data):
            if not isinstance(item, Frame):
                self._sim.note(Received(self._channel, item.raw, item.tc_code or "", item.sequence_no or 0,
                                        self._sim.reactor.seconds(), False, f"bad: {item.reason}"))
                continue
            if self._sim.take(self._channel, item.raw):
                self._count += 1
                every = self._sim.disconnect_every
                if every and self._count % every == 0:
                    self.transport.loseConnection()
                    return


class _AckLink(protocol.Protocol):
    def __init__(self, sim: "GokiwonSimulator") -> None:
        self._sim = sim

    def connectionMade(self) -> None:  # noqa: N802
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, OSError):
            pass
        self._sim.ack_link_up(self.transport)

    def connectionLost(self, reason) -> None:  # noqa: N802
        self._sim.ack_link_up(None)


class _Rotating:
    """A client endpoint that connects to the next of several endpoints at each attempt."""

    def __init__(self, choices: list) -> None:
        self._choices = choices
        self._next = 0

    def connect(self, factory):
        endpoint = self._choices[self._next % len(self._choices)]
        self._next += 1
        return endpoint.connect(factory)


class GokiwonSimulator:
    def __init__(self, reactor, layouts: Layouts, *,
                 ack_delay: float = 0.0, nak_rate: float = 0.0, nak_code: str = "12", drop_rate: float = 0.0,
                 disconnect_every: int = 0, alive_interval: float = 30.0, line_code: str = "GKW1",
                 on_received: Callable[[Received], None] | None = None, seed: int | None = None) -> None:
        self.reactor = reactor
        self.layouts = layouts
        self.ack_delay = ack_delay
        self.nak_rate = nak_rate
        self.nak_code = nak_code
        self.drop_rate = drop_rate
        self.disconnect_every = disconnect_every
        self.line_code = line_code
        self.on_received = on_received
        self.acking = True  # tests switch answers off to see resends
        self.received: list[Received] = []
        self.connections: dict[str, int] = {}
        self.live: set[_ChannelServer] = set()
        self.alives: dict[str, int] = {}
        self._seen: set[tuple[str, int]] = set()
        self._random = random.Random(seed)
        self._sequence = 0
        self._alive_count = 0
        self._ports: dict[str, object] = {}
        self._port_numbers: dict[str, int] = {}
        self._ack_service: ClientService | None = None
        self._ack_transport = None
        self._unsent: list[bytes] = []
        self._alive = task.LoopingCall(self._send_alive)
        self._alive.clock = reactor
        self._alive_interval = alive_interval

    # Listening ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def listen(self, ports: dict[str, int], host: str = "127.0.0.1", tls=None):
        """Listen on {channel: port} (0: any free port; the same number again after a restart).
        ``tls``: server TLS options (a Twisted ``CertificateOptions``) to play a 고기원 speaking TLS."""
        for channel, port in ports.items():
            number = self._port_numbers.get(channel, port)
            if tls is None:
                endpoint = endpoints.TCP4ServerEndpoint(self.reactor, number, interface=host)
            else:
                endpoint = endpoints.SSL4ServerEndpoint(self.reactor, number, tls, interface=host)
            factory = protocol.Factory()
            factory.protocol = lambda channel=channel: _ChannelServer(self, channel)
            listening = yield endpoint.listen(factory)
            self._ports[channel] = listening
            self._port_numbers[channel] = listening.getHost().port
        return dict(self._port_numbers)

    def start_acks(self, ack_to: tuple[str, int] | list[tuple[str, int]]) -> None:
        """Connect (and keep reconnecting) to our ACK port; answers wait in memory while it is down.
        Several addresses (two plant servers): each attempt tries the next, as 고기원 finds the
        ccl-mes that holds the forwarding lease (only it listens)."""
        if self._ack_service is None:
            addresses = [ack_to] if isinstance(ack_to, tuple) else list(ack_to)
            endpoint = _Rotating([endpoints.HostnameEndpoint(self.reactor, host, port, timeout=5)
                                  for host, port in addresses])
            factory = protocol.Factory.forProtocol(lambda: _AckLink(self))
            self._ack_service = ClientService(endpoint, factory, clock=self.reactor,
                                              retryPolicy=backoffPolicy(initialDelay=0.1, maxDelay=2.0, factor=2.0,
                                                                        jitter=lambda: 0.0))
            self._ack_service.startService()
        if not self._alive.running and self._alive_interval > 0:
            self._alive.start(self._alive_interval, now=False)

    @defer.inlineCallbacks
    def stop(self, *, drop_connections: bool = True):
        """Stop listening (as 고기원 going down: connections are cut too)."""
        for channel, port in list(self._ports.items()):
            yield port.stopListening()
        self._ports.clear()
        if drop_connections:
            yield self._cut_connections()

    def _cut_connections(self):
        for connection in list(self.live):
            connection.transport.abortConnection()
        return task.deferLater(self.reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def shutdown(self):
        yield self.stop()
        if self._alive.running:
            self._alive.stop()
        if self._ack_service is not None and self._ack_service.running:
            yield self._ack_service.stopService()

    # Taking telegrams --------------------------------------------------------------------

    def take(self, channel: str, raw: bytes) -> bool:
        """One framed telegram in; False when it was not a process telegram."""
        now = self.reactor.seconds()
        try:
            telegram = decode(raw, self.layouts)
        except TelegramRejected as refused:
            self.note(Received(channel, raw, refused.tc_code or "", refused.sequence_no or 0, now, False,
                               f"bad: {refused.reason}"))
            return False
        if telegram.layout.name == "alive":
            self.alives[channel] = self.alives.get(channel, 0) + 1
            return False
        if self.drop_rate and self._random.random() < self.drop_rate:
            self.note(Received(channel, raw, telegram.tc_code, telegram.sequence_no, now, False, "dropped"))
            return True
        key = (telegram.tc_code, telegram.sequence_no)
        duplicate = key in self._seen
        self._seen.add(key)
        if not self.acking:
            answer = "unanswered"
        elif self.nak_rate and self._random.random() < self.nak_rate:
            answer = f"nak {self.nak_code}"
        else:
            answer = "ack"
        self.note(Received(channel, raw, telegram.tc_code, telegram.sequence_no, now, duplicate, answer))
        if answer != "unanswered":
            code = "00" if answer == "ack" else self.nak_code
            reply = encode_ack(self.layouts, acked_tc_code=telegram.tc_code, acked_sequence_no=telegram.sequence_no,
                               result_code=code, line_code=self.line_code, sequence_no=self._next_sequence(),
                               sent_at=datetime.datetime.fromtimestamp(now, PLANT_TZ))
            if self.ack_delay > 0:
                self.reactor.callLater(self.ack_delay, self._send, reply)
            else:
                self._send(reply)
        return True

    def note(self, received: Received) -> None:
        self.received.append(received)
        if self.on_received is not None:
            self.on_received(received)

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 999999 + 1
        return self._sequence

    # The ACK link ------------------------------------------------------------------------

    def ack_link_up(self, transport) -> None:
        self._ack_transport = transport
        if transport is not None:
            unsent, self._unsent = self._unsent, []
            for data in unsent:
                transport.write(data)

    def _send(self, data: bytes) -> None:
        if self._ack_transport is None:
            self._unsent.append(data)  # sent once the ACK link is up again
        else:
            self._ack_transport.write(data)

    def _send_alive(self) -> None:
        self._alive_count = self._alive_count % 9999 + 1
        self._send(encode_alive(self.layouts, alive_count=self._alive_count, line_code=self.line_code,
                                sequence_no=self._next_sequence(),
                                sent_at=datetime.datetime.fromtimestamp(self.reactor.seconds(), PLANT_TZ)))
