"""Use case: the MES pipeline, journal -> writer -> forwarders, as one object.

Every telegram the MES sends takes one way through ccl-mes: the receiver appends it to the
journal (on disk before its ACK); the journal hands each durable batch to this pipeline; the
pipeline gives it to the writer (PostgreSQL: rows, outbox entries, progress, in one
transaction) and, for a channel that is live, straight to its forwarder to 고기원. When the
writer has committed a batch, the pipeline lets the journal release the space, gives live
entries their outbox ids and wakes the forwarders of the channels that got new outbox rows.

It talks to its parts only through ports (``IJournal``, ``IJournalWriter``, ``IForwarder``)
and is, in return, the one consumer of each (``IJournalConsumer``, ``IWriterConsumer``,
``IForwarderConsumer``). The assembly is in ``ccl.services.mes.makeService``.

Two decisions live here:

* **Which record becomes which outbox entry** (``outbox_entries``): an accepted telegram
  whose layout has a table and a forward channel, byte for byte, in journal order. The
  writer makes the same choice in PostgreSQL (``row_for``); this is the live copy of it.
* **When a channel goes live** (``caught_up``): a forwarder that has read everything the
  outbox holds gets the records durable but not yet committed, if nothing can slip between
  the two (see there) and if they are few enough not to make it fall back at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import twisted.internet.defer as defer
from twisted.logger import Logger
from zope.interface import implementer

from ccl.domain.journal_record import TELEGRAM, BatchOutcome, JournalRecord
from ccl.domain.telegrams import Layouts, Telegram, TelegramRejected, decode
from ccl.ports import (
    IForwarder, IForwarderConsumer, IJournal, IJournalConsumer, IJournalWriter, IWriterConsumer, OutboxEntry,
)

log = Logger()

#: A channel goes live only while at most this many journal records wait for the writer
#: (they are handed over in one go; more means PostgreSQL is behind: keep reading the outbox).
LIVE_CATCH_UP = 2000


def outbox_entries(records: Iterable[JournalRecord], layouts: Layouts) -> dict[str, list[tuple[int, OutboxEntry]]]:
    """The outbox entries ``records`` make, by channel, in journal order, as (record number,
    entry without id). Refused records, TCs that are not forwarded and records that no longer
    decode (the writer keeps those as rejected) make none."""
    found: dict[str, list[tuple[int, OutboxEntry]]] = {}
    for record in records:
        if record.kind != TELEGRAM:
            continue
        telegram = record.decoded
        if not isinstance(telegram, Telegram):
            try:
                telegram = decode(record.raw, layouts)
            except TelegramRejected:
                continue
        layout = telegram.layout
        if not layout.forward or not layout.table:
            continue
        found.setdefault(layout.forward, []).append((record.number, OutboxEntry(
            id=None, channel=layout.forward, tc_code=telegram.tc_code, sequence_no=telegram.sequence_no,
            raw=record.raw, created_at=record.received_at)))
    return found


@implementer(IJournalConsumer, IWriterConsumer, IForwarderConsumer)
class MesPipeline:
    """Owns the journal, the writer and the forwarders (one per channel; none when forwarding
    to 고기원 is off) and carries every record from one to the next."""

    def __init__(self, journal: IJournal, writer: IJournalWriter, forwarders: Mapping[str, IForwarder],
                 layouts: Layouts, *, live_catch_up: int = LIVE_CATCH_UP, live: bool = True) -> None:
        """``live`` False (two plant servers, forwarding lease): the forwarders only ever read
        the outbox, which the other ccl-mes's writer fills too, so neither this journal nor
        this writer's reports can say what comes next."""
        self.journal = journal
        self.writer = writer
        self.forwarders = dict(forwarders)
        self._layouts = layouts
        self._live_catch_up = live_catch_up
        self._live = live
        self._forwarding = False  # the forwarders run (their database is connected)
        self._reported: int | None = None  # highest outbox id the writer reported committed

    # Life cycle --------------------------------------------------------------------------

    def start(self) -> int:
        """Recover the journal and hand what it holds to the writer, then start both.
        Synchronous: call it before the MES listener opens, so replayed records precede new
        ones. Returns how many records were on disk."""
        records = self.journal.open()
        self.journal.start(self)
        self.writer.enqueue(records)
        self.writer.start(self.journal.journal_id, self)
        return len(records)

    @defer.inlineCallbacks
    def stop(self):
        """The journal finishes its last write, then the writer its batch in flight (what it
        did not apply stays in the journal for the next start)."""
        yield self.journal.stop()
        yield self.writer.stop()

    def start_forwarding(self) -> None:
        """The outbox can be read now: the forwarders start, from the store."""
        self._forwarding = True
        for forwarder in self.forwarders.values():
            forwarder.start(self)

    def stop_forwarding(self) -> None:
        self._forwarding = False
        for forwarder in self.forwarders.values():
            forwarder.stop()

    # From the journal ----------------------------------------------------------------------

    def durable(self, records: list[JournalRecord]) -> None:
        """Records just made durable: live channels take theirs at once, the writer all."""
        try:
            self._offer(records)
        except Exception:
            # Forwarding must never keep records from PostgreSQL (they reach 고기원 from the outbox).
            log.failure("handing records {first}-{last} to the live forwarders failed",
                        first=records[0].number, last=records[-1].number)
        self.writer.enqueue(records)

    def _offer(self, records: list[JournalRecord]) -> None:
        if not self._forwarding or not any(f.live for f in self.forwarders.values()):
            return
        for channel, entries in outbox_entries(records, self._layouts).items():
            forwarder = self.forwarders.get(channel)
            if forwarder is not None:
                forwarder.offer(entries)

    # From the writer -----------------------------------------------------------------------

    def committed(self, outcome: BatchOutcome, upto: int) -> None:
        """A batch up to journal record ``upto`` is in PostgreSQL."""
        self.journal.release(upto)
        try:
            self._bind(outcome, upto)
        except Exception:
            log.failure("giving live entries their outbox ids up to record {upto} failed", upto=upto)
        self.wake(outcome.channels)

    def _bind(self, outcome: BatchOutcome, upto: int) -> None:
        if not self._forwarding or not self._live:
            return
        pairs: dict[str, list[tuple[int, int]]] = {}
        for channel, number, entry_id in outcome.forwarded:
            pairs.setdefault(channel, []).append((number, entry_id))
            # One id sequence for all channels: every row up to here is committed and reported.
            self._reported = max(self._reported or 0, entry_id)
        for channel, forwarder in self.forwarders.items():
            forwarder.limit = self._reported
            forwarder.bind(pairs.get(channel, []), upto)

    def wake(self, channels: Iterable[str] | None = None) -> None:
        """New outbox entries were committed for ``channels`` (all when None): their
        forwarders read them, unless live (then ``bind`` brought them)."""
        for channel in self.forwarders if channels is None else channels:
            forwarder = self.forwarders.get(channel)
            if forwarder is not None:
                try:
                    forwarder.wake()
                except Exception:
                    log.failure("waking the {channel} forwarder failed", channel=channel)

    # From a forwarder ----------------------------------------------------------------------

    def caught_up(self, channel: str) -> None:
        """A forwarder read everything the outbox holds: hand it what the writer has not
        committed yet and make it live, if nothing can slip between the two."""
        forwarder = self.forwarders[channel]
        if not self._live or not self._forwarding or not forwarder.can_go_live():
            return
        entries = self.live_hand_over(forwarder)
        if entries is not None:
            forwarder.go_live(entries)

    def live_hand_over(self, forwarder: IForwarder) -> list[tuple[int, OutboxEntry]] | None:
        """The entries a caught-up ``forwarder`` must take to go live now, or None: not now.

        The forwarder has read every row up to its limit (the last id the writer reported;
        each report woke it), and the records after the last report are all in the writer's
        queue: together, everything, once. Before the first report there is no limit, and
        only a writer between transactions makes that true.
        """
        if forwarder.limit is None and self.writer.in_transaction:
            return None
        waiting = self.writer.waiting_records(self._live_catch_up)
        if waiting is None:
            return None
        entries = outbox_entries(waiting, self._layouts).get(forwarder.channel, [])
        if forwarder.queued + len(entries) > forwarder.live_room:
            return None  # it would fall back again at once: catch up some more first
        return entries
