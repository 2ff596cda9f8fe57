"""Store-and-forward to 고기원: the per-channel outbox state machine.

One ``ChannelForwarder`` per outgoing channel (schedule, wpd, speed). It owns no socket
and no database: it reads pending outbox entries through an ``IOutboxStore``, writes bytes
through the ``send`` callable of the connection currently attached, and keeps time with
an ``IReactorTime`` (``task.Clock`` in tests). The adapter in ``ccl.adapters.gokiwon``
plugs the real connection, store and ACK listener into it.

The rules it enforces:

* Entries go out in outbox id order, byte for byte as stored.
* At most ``window`` entries are in flight (sent, not yet ACKed); an ACK or NAK opens the
  window for the next one. An entry not answered within ``ack_timeout`` is sent again,
  the same bytes (at-least-once: 고기원 de-duplicates by TC and sequence number).
* An ACK is matched by (TC code, sequence number) against the entries sent and not yet
  answered, the oldest first, so sequence numbers that wrap at 999999 do no harm.
* A NAK (4901) moves the entry aside (state ``refused``, kept in the outbox with its
  result code) and the channel goes on.
* With ``require_ack`` off an entry counts as delivered once written to a connected socket.
* Sending is paced by a token bucket at ``drain_rate`` per second, so a backlog after an
  outage drains oldest first at a bounded rate while new entries queue behind it.
* An entry is delivered only when the store has recorded it: after a restart whatever the
  database still calls pending is sent again.

Two ways in (why: the outbox row exists only after the PostgreSQL commit, a few to many
milliseconds after the telegram is safe in the MES journal):

* **From the store** (catching up: after a start, an outage, a backlog): entries are read
  in id order, ``batch`` at a time, woken by the writer's commits.
* **Live**, once caught up: the MES pipeline (ccl.application.mes_pipeline) hands over each
  telegram as soon as the journal has it on disk (``offer``), before PostgreSQL has it, keyed
  by its journal record number.
  When the writer commits, ``bind`` gives each its outbox id; a result that came before that
  (an ACK faster than the commit) is written to the store then. A record that got no outbox
  row (a retransmission already stored) is dropped from the queue; one already sent was sent
  once more than needed, which at-least-once allows. Too much held in memory (고기원 away,
  or PostgreSQL away so nothing gets its id) falls back to reading from the store; entries
  without an id are then forgotten here and come back from the store after their commit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from zope.interface import implementer

from ccl.ports import IForwarder, IForwarderConsumer, IOutboxStore, OutboxEntry

log = Logger()

ACCEPTED = "00"


@attrs.define(eq=False)
class _Sent:
    """Bookkeeping of one entry this process holds (identity-hashed: a key of ``_in_flight``)."""

    entry: OutboxEntry
    sends: int = 0
    timer: object | None = None  # IDelayedCall of the ACK timeout
    number: int | None = None  # journal record number of a live entry
    last_sent_at: float = 0.0
    settled: tuple[str, float] | None = None  # answer that came before the outbox id
    rowless: bool = False  # live entry the writer stored no outbox row for

    def order(self) -> tuple[int, int]:
        # Bound entries (outbox ids) precede the live ones still waiting for theirs.
        return (0, self.entry.id) if self.entry.id is not None else (1, self.number or 0)


@attrs.define
class ForwardingSettings:
    window: int = 16
    ack_timeout: float = 10.0
    require_ack: bool = True
    drain_rate: float = 5000.0  # telegrams per second, at most
    batch: int = 500  # entries read from the store at a time
    live_queue: int = 2000  # live: more waiting to be sent than this -> read from the store
    live_unbound: int = 20000  # live: more held without an outbox id than this -> same

    def __attrs_post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.ack_timeout <= 0 or self.drain_rate <= 0 or self.batch < 1:
            raise ValueError("ack_timeout, drain_rate and batch must be positive")


@attrs.define
class ChannelStats:
    sent: int = 0
    delivered: int = 0
    resent: int = 0
    refused: int = 0
    last_ack_at: float | None = None
    connected_since: float | None = None
    #: Seconds from the last send of an entry to its answer, the most recent ones.
    ack_rtt: deque = attrs.Factory(lambda: deque(maxlen=2000))


@implementer(IForwarder)
class ChannelForwarder:
    """In-order, windowed, at-least-once delivery of one channel's outbox."""

    def __init__(self, channel: str, store: IOutboxStore, clock, settings: ForwardingSettings | None = None,
                 count: Callable[[str, str], None] | None = None) -> None:
        self.channel = channel
        self._store = store
        self._clock = clock
        self.settings = settings or ForwardingSettings()
        self._count = count or (lambda name, channel: None)
        self.stats = ChannelStats()
        self._queue: deque[_Sent] = deque()  # loaded, waiting to be sent (again), in order
        self._in_flight: dict[_Sent, None] = {}  # sent on this connection, awaiting ACK (in order)
        self._unbound: dict[int, _Sent] = {}  # journal number -> live entry without outbox id yet
        self.live = False
        #: Highest outbox id whose commit the MES writer has reported (None: read without
        #: limit). A row above it may be committed while its report is still on the way;
        #: reading only up to it means a live entry and a loaded row are never the same one.
        self.limit: int | None = None
        #: Told when a read from the store finds nothing more (a chance to go live); see start().
        self._consumer: IForwarderConsumer | None = None
        self._awaiting: dict[tuple[str, int], list[_Sent]] = {}  # ACK key -> sent, not answered
        self._settling: set[int] = set()  # answered, store not yet updated
        #: One set per rescan under way: the ids whose answer was written while it read.
        self._settled_during: list[set[int]] = []
        self._cursor = 0  # highest outbox id loaded
        self._more = True  # the store may hold entries beyond the cursor
        self._woken = False  # woken while a read was under way
        self._fetching: Deferred | None = None
        self._send: Callable[[bytes], None] | None = None
        self._tokens = float(self._burst())
        self._refilled_at = clock.seconds()
        self._pacer = None  # IDelayedCall waiting for tokens
        self._running = False

    # Life cycle --------------------------------------------------------------------------

    def start(self, consumer: IForwarderConsumer | None = None) -> None:
        """Read the outbox and send; ``consumer`` (the MES pipeline) hears when everything the
        outbox holds is loaded (``caught_up``), its chance to make this channel live."""
        self._consumer = consumer
        self._running = True
        self.wake()

    def stop(self) -> None:
        self._running = False
        self.detach()
        # Live entries without an outbox id are not ours to keep: after a start they come
        # from the store like any other row (the journal has them, PostgreSQL will).
        self.live = False
        for sent in self._unbound.values():
            self._forget_key(sent)
        self._unbound.clear()
        self._queue = deque(s for s in self._queue if s.entry.id is not None)
        if self._pacer is not None and self._pacer.active():
            self._pacer.cancel()
        self._pacer = None

    # The connection ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._send is not None

    def attach(self, send: Callable[[bytes], None]) -> None:
        """A connection to 고기원 is up: ``send`` writes bytes to it."""
        self._send = send
        self.stats.connected_since = self._clock.seconds()
        self._pump()

    def detach(self) -> None:
        """The connection is gone: what was in flight goes back to the head of the queue.

        The entries stay matchable, so an ACK that still arrives for one settles it.
        """
        self._send = None
        self.stats.connected_since = None
        if not self._in_flight:
            return
        for sent in self._in_flight:
            self._cancel_timer(sent)
        back = sorted((s for s in self._in_flight if not s.rowless), key=_Sent.order)
        for sent in self._in_flight:
            if sent.rowless:
                self._forget_key(sent)
        self._in_flight.clear()
        self._queue.extendleft(reversed(back))

    # Reading the outbox ------------------------------------------------------------------

    def wake(self) -> None:
        """New entries may have been committed: read them (again after a read under way, which
        may have started before their commit). Live, ``bind`` brings them instead."""
        if self.live:
            return
        self._more = True
        if self._fetching is not None:
            self._woken = True
        self._fill()

    def _fill(self) -> None:
        if not self._running or self._fetching is not None or not self._more:
            return
        if len(self._queue) >= self.settings.batch:
            return
        before = None if self.limit is None else self.limit + 1
        self._fetching = self._store.fetch_pending(self.channel, after_id=self._cursor, limit=self.settings.batch,
                                                   before_id=before)
        self._fetching.addCallbacks(self._loaded, self._load_failed)

    def _loaded(self, entries: list[OutboxEntry]) -> None:
        self._fetching = None
        self._more = len(entries) >= self.settings.batch or self._woken
        self._woken = False
        for entry in entries:
            if entry.id > self._cursor:
                self._cursor = entry.id
                self._queue.append(_Sent(entry))
        self._pump()
        if self._more:
            self._fill()
        elif self._fetching is None and self._consumer is not None:
            self._consumer.caught_up(self.channel)

    def _load_failed(self, failure) -> None:
        self._fetching = None
        if failure.check(CancelledError):
            return  # the store is closing
        log.failure("reading the {channel} outbox failed", failure, channel=self.channel)

    def rescan(self) -> Deferred:
        """Safety net: pick up pending entries below the cursor that this process does not hold.

        Ids are handed out when a row is inserted but become visible at commit, so a
        transaction that commits after a later one can leave a gap behind the cursor. A dead
        letter sent again from the UI (refused -> pending, ccl.application.refusals) is found
        the same way; being older than everything queued, it goes out next.
        """
        known = [s.entry.id for s in self._queue if s.entry.id is not None] + [
            s.entry.id for s in self._in_flight if s.entry.id is not None] + list(self._settling)
        # An answer written while the read is under way may be newer than what it saw: such an
        # entry is not taken from this read (it would go out once more than needed); if it is
        # pending again by then (sent again from the UI), the next rescan finds it.
        settled: set[int] = set()
        self._settled_during.append(settled)
        found = self._store.fetch_pending(self.channel, after_id=0, limit=self.settings.batch,
                                          before_id=self._cursor + 1, exclude=known)

        def done(result):
            # By identity: two rescans' sets may be equal (both empty).
            self._settled_during = [s for s in self._settled_during if s is not settled]
            return result

        def add(entries):
            fresh = [e for e in entries if not self._is_loaded(e.id) and e.id not in settled]
            if fresh:
                log.warn("{channel}: {n} pending outbox entries found behind the cursor (dead letters sent again, "
                         "or rows committed late); sending them ahead of those waiting",
                         channel=self.channel, n=len(fresh))
                merged = sorted(list(self._queue) + [_Sent(e) for e in fresh], key=_Sent.order)
                self._queue = deque(merged)
                self._pump()
            self.wake()
            return len(fresh)

        return found.addBoth(done).addCallback(add)

    def _is_loaded(self, entry_id: int) -> bool:
        return entry_id in self._settling or any(s.entry.id == entry_id for s in self._in_flight) or any(
            s.entry.id == entry_id for s in self._queue)

    # Live: straight from the journal ----------------------------------------------------

    def can_go_live(self) -> bool:
        """Connected, everything the store holds for this channel is loaded and no read is
        under way. (Not while 고기원 is away: the live queue would only grow until it falls
        back, again and again.)"""
        return (self._running and not self.live and self._send is not None and self._fetching is None
                and not self._more and len(self._queue) < self.settings.batch)

    def go_live(self, entries: list[tuple[int, OutboxEntry]]) -> None:
        """From now on new entries come through ``offer``. ``entries``: (journal number, entry
        without id) of every record of this channel that is durable but not yet committed."""
        self.live = True
        log.info("{channel}: caught up with the outbox; forwarding straight from the journal", channel=self.channel)
        self.offer(entries)

    def offer(self, entries: list[tuple[int, OutboxEntry]]) -> None:
        """Telegrams of this channel just made durable by the journal, in journal order."""
        if not self.live or not entries:
            return
        for number, entry in entries:
            sent = _Sent(entry, number=number)
            self._unbound[number] = sent
            self._queue.append(sent)
        if len(self._queue) > self.settings.live_queue or len(self._unbound) > self.settings.live_unbound:
            self.fall_back()
            return
        self._pump()

    def bind(self, pairs: list[tuple[int, int]], applied_upto: int) -> None:
        """The writer committed journal records up to ``applied_upto``; ``pairs`` are (journal
        number, outbox id) of this channel's new outbox rows among them, in id order."""
        if not self.live:
            return  # reading from the store: the commit's wake-up brings them
        unbound = self._unbound
        for number, entry_id in pairs:
            self._cursor = max(self._cursor, entry_id)
            sent = unbound.pop(number, None)
            if sent is None:
                continue
            sent.entry = attrs.evolve(sent.entry, id=entry_id)
            for _ in range(sent.sends):
                self._store.record_sent(entry_id, sent.last_sent_at)
            if sent.settled is not None:
                code, at = sent.settled
                sent.settled = None
                self._write_result(sent, code, at)
        # Committed and still without an id: no outbox row (a retransmission already stored).
        dropped = False
        while unbound:
            number = next(iter(unbound))
            if number > applied_upto:
                break
            sent = unbound.pop(number)
            sent.rowless = True
            if sent.settled is not None or sent in self._in_flight:
                continue  # answered already, or its answer is still welcome
            try:
                self._queue.remove(sent)
                dropped = True
            except ValueError:
                pass
            self._forget_key(sent)
        if dropped:
            self._pump()

    def fall_back(self) -> None:
        """Too much held in memory: read from the store again. Entries without an outbox id
        are forgotten (their rows come from the store after their commit); what is queued
        beyond one batch too."""
        log.warn("{channel}: {queued} entries queued, {unbound} without an outbox id yet; reading from the "
                 "outbox again", channel=self.channel, queued=len(self._queue), unbound=len(self._unbound))
        self.live = False
        for sent in self._unbound.values():
            self._cancel_timer(sent)
            self._in_flight.pop(sent, None)
            self._forget_key(sent)
        self._unbound.clear()
        kept: deque[_Sent] = deque()
        for sent in self._queue:
            if sent.entry.id is None:
                continue
            if len(kept) >= self.settings.batch:
                self._cursor = min(self._cursor, sent.entry.id - 1)
                break
            kept.append(sent)
        self._queue = kept
        self._more = True
        self._fill()
        self._pump()

    # Sending -----------------------------------------------------------------------------

    def _burst(self) -> float:
        # Up to a tenth of a second's worth at once: pacing, not a stutter per telegram.
        return max(float(self.settings.window), self.settings.drain_rate / 10)

    def _take_token(self) -> bool:
        now = self._clock.seconds()
        self._tokens = min(self._burst(), self._tokens + (now - self._refilled_at) * self.settings.drain_rate)
        self._refilled_at = now
        if self._tokens >= 1 - 1e-9:  # float rounding must not starve the bucket
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False

    def _pump(self) -> None:
        while self._send is not None and self._queue:
            if self.settings.require_ack and len(self._in_flight) >= self.settings.window:
                break
            if not self._take_token():
                if self._pacer is None or not self._pacer.active():
                    wait = max((1 - self._tokens) / self.settings.drain_rate, 0.0005)
                    self._pacer = self._clock.callLater(wait, self._pump)
                break
            self._transmit(self._queue.popleft())
        if len(self._queue) < self.settings.batch // 2:
            self._fill()

    def _transmit(self, sent: _Sent) -> None:
        assert self._send is not None
        entry = sent.entry
        self._send(entry.raw)
        now = self._clock.seconds()
        sent.sends += 1
        sent.last_sent_at = now
        self.stats.sent += 1
        if sent.sends > 1 or entry.attempts > 0:
            # Sent before: by this process (ACK timeout, lost connection) or an earlier one.
            self.stats.resent += 1
            self._count("resent", self.channel)
        if entry.id is not None:
            self._store.record_sent(entry.id, now)  # a live entry's sends are recorded at bind()
        if not self.settings.require_ack:
            self._settle(sent, ACCEPTED, now)
            return
        key = (entry.tc_code, entry.sequence_no)
        waiting = self._awaiting.setdefault(key, [])
        if sent not in waiting:
            waiting.append(sent)
        self._in_flight[sent] = None
        sent.timer = self._clock.callLater(self.settings.ack_timeout, self._timed_out, sent)

    def _timed_out(self, sent: _Sent) -> None:
        sent.timer = None
        if sent not in self._in_flight or self._send is None:
            return
        if sent.rowless:
            del self._in_flight[sent]
            self._forget_key(sent)
            self._pump()
            return
        log.info("{channel}: no ACK for TC {tc} #{seq} (outbox id {id}) within {timeout}s; sending it again",
                 channel=self.channel, tc=sent.entry.tc_code, seq=sent.entry.sequence_no,
                 id=sent.entry.id, timeout=self.settings.ack_timeout)
        del self._in_flight[sent]
        self._transmit(sent)

    def _cancel_timer(self, sent: _Sent) -> None:
        if sent.timer is not None and sent.timer.active():
            sent.timer.cancel()
        sent.timer = None

    # Answers from 고기원 -------------------------------------------------------------------

    def ack(self, tc_code: str, sequence_no: int, result_code: str) -> bool:
        """A 4900 (result "00") or 4901 for (tc_code, sequence_no); False when nothing matches."""
        waiting = self._awaiting.get((tc_code, sequence_no))
        if not waiting:
            return False
        sent = waiting[0]
        now = self._clock.seconds()
        self.stats.last_ack_at = now
        self.stats.ack_rtt.append(now - sent.last_sent_at)
        self._cancel_timer(sent)
        if sent in self._in_flight:
            del self._in_flight[sent]
        else:
            # Answered after its connection dropped: it waits in the queue to be resent.
            try:
                self._queue.remove(sent)
            except ValueError:
                pass
        self._settle(sent, result_code, now)
        self._pump()
        return True

    def _forget_key(self, sent: _Sent) -> None:
        key = (sent.entry.tc_code, sent.entry.sequence_no)
        waiting = self._awaiting.get(key)
        if waiting and sent in waiting:
            waiting.remove(sent)
            if not waiting:
                del self._awaiting[key]

    def _settle(self, sent: _Sent, result_code: str, now: float) -> None:
        entry = sent.entry
        self._forget_key(sent)
        if result_code == ACCEPTED:
            self.stats.delivered += 1
            self._count("delivered", self.channel)
        else:
            self.stats.refused += 1
            self._count("refused", self.channel)
        if entry.id is None:
            if not sent.rowless:
                sent.settled = (result_code, now)  # written once bind() gives its outbox id
            return
        self._write_result(sent, result_code, now)

    def _write_result(self, sent: _Sent, result_code: str, now: float) -> None:
        entry = sent.entry
        self._settling.add(entry.id)
        if result_code == ACCEPTED:
            written = self._store.mark_delivered(entry.id, now)
        else:
            log.warn("{channel}: 고기원 refused TC {tc} #{seq} (outbox id {id}) with result code {code}; "
                     "kept as refused, the channel goes on",
                     channel=self.channel, tc=entry.tc_code, seq=entry.sequence_no, id=entry.id, code=result_code)
            written = self._store.mark_refused(entry.id, result_code, now)
        written.addBoth(self._written, entry.id)
        written.addErrback(self._write_failed, entry.id)

    def _written(self, result, entry_id: int):
        self._settling.discard(entry_id)
        for settled in self._settled_during:
            settled.add(entry_id)
        return result

    def _write_failed(self, failure, entry_id: int) -> None:
        if failure.check(CancelledError):
            return  # stopping: the entry is still pending in the database and goes out again later
        log.failure("{channel}: recording outbox id {id} failed", failure, channel=self.channel, id=entry_id)

    # Status ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def live_room(self) -> int:
        """Entries it may hold waiting when it goes live: more would make it fall back at once."""
        return self.settings.live_queue // 2

    def oldest_loaded_at(self) -> float | None:
        """created_at of the oldest entry held and not answered (None when none)."""
        times = [s.entry.created_at for s in self._in_flight]
        if self._queue:
            times.append(min(s.entry.created_at for s in list(self._queue)[:64]))
        return min(times) if times else None
