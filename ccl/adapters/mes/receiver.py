"""The MES listener: telegrams in, journaled, ACKed or NAKed in order.

Per connection a TelegramFramer cuts the byte stream by the header's length field, so any
split or coalescing of TCP segments reads the same, and re-synchronises after garbage.

* An accepted process telegram is appended to the journal; its 4900 ACK (result 00) is
  written only when the journal says the record is on disk (fsync'd).
* A refused one (framing garbage, or a frame the codec rejects) is journaled as rejected,
  then answered with a 4901 NAK carrying the result code and, when readable, the refused
  telegram's TC and sequence number.
* Alive (4999) is never answered and never stored: it updates the peer's last-seen time.
* Replies leave in the order the telegrams came on that connection.
* A connection holding half a telegram for ``idle_timeout`` seconds gets those bytes
  rejected (NAK) and is closed; at most ``max_connections`` connections are served.

PostgreSQL plays no part here: the writer applies the journal independently.
"""

from __future__ import annotations

import collections

from twisted.internet import protocol, task
from twisted.logger import Logger

from ccl.adapters.mes.links import LinkTracker
from ccl.adapters.storage.journal import Journal
from ccl.domain.journal_record import REJECTED, TELEGRAM
from ccl.domain.metrics import Registry
from ccl.domain.reply_builder import ReplyBuilder
from ccl.domain.telegrams import ACCEPTED, Frame, Garbage, Layouts, TelegramFramer, TelegramRejected, decode
from ccl.domain.telegrams.layout import ALIVE, PROCESS

log = Logger()

#: Refused telegrams with no readable TC / sequence are NAKed with these (see replies.py).
UNKNOWN_TC = "0000"
UNKNOWN_SEQUENCE = 0
#: A garbage run followed by this much silence is refused at once (NAK) instead of waiting
#: for the next header, so a sender that waits for each reply is not kept waiting.
GARBAGE_QUIET = 0.3
#: Stop reading a connection with this many telegrams waiting for their replies, until they drain.
PAUSE_ABOVE = 20000
RESUME_BELOW = 2000


class _Reply:
    """The replies to one TCP read's telegrams, written once its journal group is on disk."""

    __slots__ = ("data", "ready", "count")

    def __init__(self, count: int = 0):
        self.data: bytes | None = None
        self.ready = False
        self.count = count


class _Group:
    """What one TCP read brought: journal drafts and the replies they will get, in order."""

    __slots__ = ("drafts", "replies", "received")

    def __init__(self):
        self.drafts: list[tuple] = []
        #: (acked TC, acked sequence number, result code) per reply, in arrival order.
        self.replies: list[tuple[str, int, str]] = []
        self.received: dict[str, int] = {}


class MesReceiver(protocol.Protocol):
    def __init__(self, factory: MesReceiverFactory):
        self.factory = factory
        self.framer = TelegramFramer(factory.layouts)
        self.host = "?"
        self.port = 0
        self.peer = "?"
        self.last_data = 0.0
        self._replies: collections.deque[_Reply] = collections.deque()
        self._closing = False
        self._gone = False
        self._paused = False
        self._flush_due = False
        #: Telegrams whose replies wait for the journal (reading pauses above PAUSE_ABOVE).
        self._waiting = 0

    def connectionMade(self):  # noqa: N802 (Twisted's name)
        address = self.transport.getPeer()
        self.host, self.port = getattr(address, "host", "?"), getattr(address, "port", 0)
        self.peer = f"{self.host}:{self.port}"
        if hasattr(self.transport, "setTcpNoDelay"):
            # Replies are small and must leave at once, not wait for Nagle's algorithm.
            self.transport.setTcpNoDelay(True)
        self.last_data = self.factory.clock.seconds()
        self.factory.opened(self)
        log.info("MES connection from {peer}", peer=self.peer)

    def dataReceived(self, data: bytes):  # noqa: N802
        if self._closing:
            return
        self.last_data = self.factory.clock.seconds()
        self.factory.links.seen(self.host)
        group = _Group()
        for item in self.framer.feed(data):
            self._take(item, group)
        self._submit(group)

    def connectionLost(self, reason):  # noqa: N802
        self._gone = True
        # Bytes that never became a telegram are still kept for diagnosis (no NAK: nobody to tell).
        group = _Group()
        for item in self.framer.flush(final=True):
            self._reject(group, item.raw, item.code, f"{item.reason} (connection closed)", item.tc_code,
                         item.sequence_no, reply=False)
        self._submit(group)
        self._replies.clear()
        self.factory.closed(self)
        log.info("MES connection from {peer} closed", peer=self.peer)

    def quiet(self) -> None:
        """No data for a moment: refuse garbage that cannot start a telegram (keeps a plausible start)."""
        group = _Group()
        for item in self.framer.flush(final=False):
            self._reject(group, item.raw, item.code, item.reason, item.tc_code, item.sequence_no,
                         reply=not item.continued)
        self._submit(group)

    def idle_expired(self) -> None:
        """Half a telegram and silence for idle_timeout: refuse those bytes, then close."""
        log.warn("MES connection {peer}: {count} bytes of an unfinished telegram and no data for {timeout}s; "
                 "rejecting them and closing", peer=self.peer, count=self.framer.buffered,
                 timeout=self.factory.idle_timeout)
        group = _Group()
        for item in self.framer.flush(final=True):
            self._reject(group, item.raw, item.code, f"{item.reason} (idle timeout)", item.tc_code, item.sequence_no,
                         reply=not item.continued)
        self._submit(group)
        self._closing = True
        closer = _Reply()
        closer.ready = True
        self._replies.append(closer)  # data None: close when everything before it is sent
        self._flush()

    # one framed item ------------------------------------------------------------------------

    def _take(self, item: Frame | Garbage, group: _Group) -> None:
        factory = self.factory
        if isinstance(item, Garbage):
            self._reject(group, item.raw, item.code, item.reason, item.tc_code, item.sequence_no,
                         reply=not item.continued)
            return
        try:
            telegram = decode(item.raw, factory.layouts)
        except TelegramRejected as error:
            self._reject(group, item.raw, error.code, error.reason, error.tc_code, error.sequence_no, reply=True)
            return
        kind = telegram.layout.kind
        tc_code = telegram.tc_code
        group.received[tc_code] = group.received.get(tc_code, 0) + 1
        if kind == ALIVE:
            fields = telegram.fields
            factory.links.alive(self.host, fields.get("alive_count"), fields.get("state"))
            return
        if kind != PROCESS:
            # A 4900/4901 sent to us on this port has nothing to answer and nothing to store.
            log.warn("MES {peer} sent TC {tc} ({name}) on the telegram port; ignored", peer=self.peer,
                     tc=tc_code, name=telegram.layout.name)
            return
        group.drafts.append((TELEGRAM, factory.clock.seconds(), self.peer, factory.listener, item.raw,
                             None, None, None, None, telegram))
        group.replies.append((tc_code, telegram.sequence_no, ACCEPTED))

    def _reject(self, group: _Group, raw: bytes, code: str, reason: str, tc_code: str | None,
                sequence_no: int | None, *, reply: bool) -> None:
        factory = self.factory
        factory.rejected.inc(tc=tc_code or "unknown", code=code)
        log.info("MES {peer}: refused {count} bytes, code {code}: {reason}", peer=self.peer, count=len(raw),
                 code=code, reason=reason)
        group.drafts.append((REJECTED, factory.clock.seconds(), self.peer, factory.listener, raw, code, reason,
                             tc_code, sequence_no, None))
        if reply:
            tc_width = factory.tc_width
            acked_tc = tc_code if tc_code and len(tc_code) == tc_width and tc_code.isdigit() else UNKNOWN_TC
            group.replies.append((acked_tc, sequence_no or UNKNOWN_SEQUENCE, code))

    def _submit(self, group: _Group) -> None:
        """Journal what one read brought, as one group; its replies go out once it is on disk."""
        factory = self.factory
        for tc_code, count in group.received.items():
            factory.received.inc(count, tc=tc_code)
        if not group.drafts:
            return
        slot = self._slot(len(group.replies)) if group.replies else None
        durable = factory.journal.append_many(group.drafts)
        durable.addCallbacks(self._durable, self._journal_failed, callbackArgs=(slot, group.replies))

    # replies, in arrival order ------------------------------------------------------------

    def _slot(self, count: int) -> _Reply | None:
        if not self.factory.reply_ack or self._gone:
            return None
        slot = _Reply(count)
        self._replies.append(slot)
        self._waiting += count
        if not self._paused and self._waiting > PAUSE_ABOVE:
            self._paused = True
            self.transport.pauseProducing()
        return slot

    def _durable(self, records, slot: _Reply | None, replies: list[tuple[str, int, str]]) -> None:
        if slot is None or self._gone:
            return
        factory = self.factory
        build = factory.reply
        slot.data = b"".join([build(acked_tc, acked_sequence, code) for acked_tc, acked_sequence, code in replies])
        slot.ready = True
        accepted = sum(1 for _, _, code in replies if code == ACCEPTED)
        if accepted:
            factory.replies.inc(accepted, result=ACCEPTED)
        for _, _, code in replies:
            if code != ACCEPTED:
                factory.replies.inc(result=code)
        if not self._flush_due and self._replies and self._replies[0] is slot:
            # The journal fires all the groups of one disk write in one go: write their
            # replies out together, once, right after.
            self._flush_due = True
            factory.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._gone:
            return
        replies = self._replies
        out = []
        while replies and replies[0].ready:
            slot = replies.popleft()
            if slot.data is None:  # the closing marker
                if out:
                    self.transport.write(b"".join(out))
                    out = []
                self.transport.loseConnection()
                replies.clear()
                break
            self._waiting -= slot.count
            out.append(slot.data)
        if out:
            self.transport.write(b"".join(out))
        if self._paused and self._waiting < RESUME_BELOW:
            self._paused = False
            self.transport.resumeProducing()

    def _journal_failed(self, failure) -> None:
        # Not on disk means no ACK. Dropping the connection makes the MES send again what it
        # has no ACK for, and keeps later replies from leaving out of order.
        if not self._gone:
            log.error("MES {peer}: journal write failed ({error}); closing the connection without ACK",
                      peer=self.peer, error=failure.getErrorMessage())
            self._replies.clear()
            self._waiting = 0
            self._closing = True
            self.transport.abortConnection()


class MesReceiverFactory(protocol.Factory):
    """One per listener; knows the open connections and sweeps idle half telegrams."""

    def __init__(self, clock, layouts: Layouts, journal: Journal, *, links: LinkTracker,
                 registry: Registry | None = None, listener: str = "mes", reply_ack: bool = True,
                 line_code: str = "CCL1", idle_timeout: float = 60.0, max_connections: int = 64):
        self.clock = clock
        self.layouts = layouts
        self.journal = journal
        self.links = links
        self.listener = listener
        self.reply_ack = reply_ack
        self.line_code = line_code
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.tc_width = next(f.width for f in layouts.header if f.name == "tc_code")
        self.connections: set[MesReceiver] = set()
        self._replies = ReplyBuilder(layouts, line_code)
        self._sweeper: task.LoopingCall | None = None
        registry = registry or Registry()
        self.received = registry.counter(f"{listener}_telegrams_received_total",
                                         "Telegrams received and decoded, by TC (alive included)")
        self.rejected = registry.counter(f"{listener}_telegrams_rejected_total",
                                         "Telegrams or garbage refused, by TC (when readable) and result code")
        self.replies = registry.counter(f"{listener}_replies_sent_total", "ACK (result 00) and NAK telegrams sent back, by result code")
        self.refused_connections = registry.counter(f"{listener}_connections_refused_total",
                                                    "Connections closed at once because max_connections were open")

    def startFactory(self):  # noqa: N802
        self._sweeper = task.LoopingCall(self._sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(max(0.05, min(GARBAGE_QUIET / 2, self.idle_timeout / 4)), now=False)

    def stopFactory(self):  # noqa: N802
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()

    def buildProtocol(self, addr):  # noqa: N802
        if len(self.connections) >= self.max_connections:
            self.refused_connections.inc()
            log.warn("MES connection from {addr} refused: {count} connections open (max_connections)",
                     addr=getattr(addr, "host", addr), count=len(self.connections))
            return None
        return MesReceiver(self)

    def opened(self, connection: MesReceiver) -> None:
        self.connections.add(connection)
        self.links.opened(connection.host, connection.port)

    def closed(self, connection: MesReceiver) -> None:
        self.connections.discard(connection)
        self.links.closed(connection.host, connection.port)

    def _sweep(self) -> None:
        now = self.clock.seconds()
        for connection in list(self.connections):
            if not connection.framer.buffered or connection._closing:
                continue
            if connection.last_data <= now - self.idle_timeout:
                connection.idle_expired()
            elif connection.last_data <= now - GARBAGE_QUIET:
                connection.quiet()

    def reply(self, acked_tc: str, acked_sequence: int, code: str) -> bytes:
        """A 4900 ACK (code 00) or 4901 NAK with our own running sequence number."""
        return self._replies.build(acked_tc, acked_sequence, code, self.clock.seconds())
