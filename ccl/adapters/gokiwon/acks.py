"""Our ACK port for 고기원 (``[mes] ack_listen``, 9306): its 4900/4901 and 4999 come in here.

The stream is cut with the same ``TelegramFramer`` as the MES link. A 4900/4901 goes to
the forwarding service, which settles the matching outbox entry; a 4999 updates 고기원's
last-seen time. Nothing is ever answered on this link (the spec has 고기원 expect no
replies here): garbage, undecodable telegrams and telegrams that do not belong on an ACK
link are kept whole in ``rejected_telegrams`` (listener ``gokiwon-ack``) and logged.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import protocol
from twisted.logger import Logger

from ccl.domain.telegrams import UNKNOWN_TC, Frame, Layouts, TelegramFramer, TelegramRejected, decode

log = Logger()

LISTENER = "gokiwon-ack"


class AckProtocol(protocol.Protocol):
    def __init__(self, factory: "AckFactory") -> None:
        self._factory = factory
        self._framer = TelegramFramer(factory.layouts)
        self._idle = None
        self._peer = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted's name)
        peer = self.transport.getPeer()
        self._peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        log.info("고기원 ACK link: {peer} connected", peer=self._peer)
        self._factory.connections += 1
        self._factory.live.add(self)
        self._factory.changed()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._arm_idle()
        for item in self._framer.feed(data):
            self._handle(item)

    def _arm_idle(self) -> None:
        clock = self._factory.reactor
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._factory.idle_timeout)
        else:
            self._idle = clock.callLater(self._factory.idle_timeout, self._went_idle)

    def _went_idle(self) -> None:
        # Half a telegram that never completed: keep what cannot become one.
        for item in self._framer.flush(final=False):
            self._handle(item)

    def _handle(self, item) -> None:
        now = self._factory.reactor.seconds()
        if not isinstance(item, Frame):
            self._factory.reject(now, self._peer, item.code, item.reason, item.tc_code, item.sequence_no, item.raw)
            return
        try:
            telegram = decode(item.raw, self._factory.layouts)
        except TelegramRejected as refused:
            self._factory.reject(now, self._peer, refused.code, refused.reason, refused.tc_code,
                                 refused.sequence_no, item.raw)
            return
        name = telegram.layout.name
        if name in ("ack", "nak"):
            fields = telegram.fields
            self._factory.on_ack(str(fields["acked_tc_code"]), int(fields["acked_sequence_no"] or 0),
                                 str(fields["result_code"]))
        elif name == "alive":
            self._factory.on_alive(telegram.fields.get("alive_count"), now)
        else:
            self._factory.reject(now, self._peer, UNKNOWN_TC,
                                 f"TC {telegram.tc_code} ({name}) does not belong on the 고기원 ACK link",
                                 telegram.tc_code, telegram.sequence_no, item.raw)

    def connectionLost(self, reason) -> None:  # noqa: N802
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        for item in self._framer.flush(final=True):
            self._handle(item)
        self._factory.connections -= 1
        self._factory.live.discard(self)
        log.info("고기원 ACK link: {peer} disconnected", peer=self._peer)
        self._factory.changed()


class AckFactory(protocol.Factory):
    def __init__(self, reactor, layouts: Layouts, *, on_ack: Callable[[str, int, str], None],
                 on_alive: Callable[[int | None, float], None],
                 reject: Callable[..., None], changed: Callable[[], None], idle_timeout: float = 60.0) -> None:
        self.reactor = reactor
        self.layouts = layouts
        self.on_ack = on_ack
        self.on_alive = on_alive
        self.reject = reject
        self.changed = changed
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.live: set[AckProtocol] = set()

    def close_all(self) -> None:
        for connection in list(self.live):
            connection.transport.loseConnection()

    def buildProtocol(self, addr):  # noqa: N802
        return AckProtocol(self)
