"""Use case: apply the MES journal to the process store, in arrival order, in batches.

The receiver has already made every record durable (and ACKed or NAKed it); from here on
nothing may be lost or doubled, and nothing here may ever hold the MES link up:

* records are applied strictly in journal order, many per transaction (the store writes
  rows, outbox entries, NOTIFYs and the journal progress in ONE transaction);
* while the store is unavailable the writer waits and retries the same batch with capped
  back-off; records keep piling up in the journal (the backlog) and are caught up later;
* a batch the store refuses outright (a value PostgreSQL will not take) is retried record
  by record, and a record refused on its own is kept as a rejected telegram with the
  database's reason, so one bad row can never stop the line's data behind it.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable, Iterable

import attrs
import twisted.internet.defer as defer
from twisted.logger import Logger
from zope.interface import implementer

from ccl.domain.journal_record import TELEGRAM, BatchOutcome, JournalRecord, ProcessRow, RejectedRow
from ccl.domain.metrics import Registry
from ccl.domain.telegrams import ACCEPTED, FORMAT_ERROR, Layouts, Telegram, TelegramRejected, decode
from ccl.ports import IJournalWriter, IProcessStore, IWriterConsumer, StoreRefused, StoreUnavailable

log = Logger()

#: Records waiting beyond this many are kept without their decoded telegram.
KEEP_DECODED = 20000

#: Header columns every tc table has (besides id and raw), in this order.
HEADER_COLUMNS = ("tc_code", "line_code", "sequence_no", "sent_at", "received_at", "peer")


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def rejected_row(record: JournalRecord, code: str, reason: str) -> RejectedRow:
    return RejectedRow(number=record.number, received_at=record.received_at, peer=record.peer,
                       listener=record.listener, code=code, reason=reason,
                       tc_code=record.tc_code, sequence_no=record.sequence_no, raw=record.raw)


def row_for(record: JournalRecord, layouts: Layouts) -> ProcessRow | RejectedRow:
    """The row a journal record becomes. Replayed records are decoded again; one that no
    longer decodes (the layout file was edited meanwhile) is kept as rejected, not dropped."""
    if record.kind != TELEGRAM:
        return rejected_row(record, record.code or FORMAT_ERROR, record.reason or "rejected")
    telegram = record.decoded
    if not isinstance(telegram, Telegram):
        try:
            telegram = decode(record.raw, layouts)
        except TelegramRejected as error:
            return RejectedRow(number=record.number, received_at=record.received_at, peer=record.peer,
                               listener=record.listener, code=error.code,
                               reason=f"accepted when received, but no longer decodes with the current "
                                      f"layout: {error.reason}",
                               tc_code=error.tc_code, sequence_no=error.sequence_no, raw=record.raw)
    layout = telegram.layout
    if not layout.table:
        return rejected_row(record, FORMAT_ERROR, f"TC {telegram.tc_code} has no table in the layout")
    columns = {
        "tc_code": telegram.tc_code, "line_code": telegram.line_code, "sequence_no": telegram.sequence_no,
        "sent_at": telegram.sent_at, "received_at": _utc(record.received_at), "peer": record.peer,
    }
    for spec in layout.record_fields:
        columns[spec.name] = telegram.fields.get(spec.name)
    coil = telegram.fields.get("coil_number")
    return ProcessRow(number=record.number, table=layout.table, columns=columns, tc_code=telegram.tc_code,
                      sequence_no=telegram.sequence_no, coil_number=coil if isinstance(coil, str) else None,
                      raw=record.raw, forward=layout.forward)


class LazyRows:
    """The rows of a batch, built when the store iterates them (in its worker thread, so
    decoding replayed records never holds the reactor up)."""

    def __init__(self, records: list[JournalRecord], layouts: Layouts):
        self._records = records
        self._layouts = layouts

    def __iter__(self):
        return (row_for(record, self._layouts) for record in self._records)

    def __len__(self) -> int:
        return len(self._records)


@implementer(IJournalWriter)
class TelegramWriter:
    """Drains journal records into an IProcessStore.

    ``start(journal, consumer)``: after each committed batch the consumer (the MES pipeline)
    hears of it with its BatchOutcome (the forwarding channels that got new ``forward_outbox``
    rows and their ids) and the journal number reached. A consumer must be quick; a failure
    of it is logged and ignored, never the end of the writer.
    """

    def __init__(self, store: IProcessStore, layouts: Layouts, clock, *, batch_size: int = 2000,
                 registry: Registry | None = None, max_delay: float = 5.0, min_interval: float = 0.0):
        self._store = store
        self._layouts = layouts
        self._clock = clock
        self.journal: str | None = None  # the journal's id, given at start
        self._consumer: IWriterConsumer | None = None
        self._batch_size = batch_size
        self._max_delay = max_delay
        # Adaptive batching instead of a fixed linger: a record arriving while the writer is
        # idle is committed at once (low latency at any ordinary rate), and records arriving
        # while a transaction is in flight make up the next batch. Only when transactions
        # follow each other back to back does the next one wait until ``min_interval`` after
        # the start of the previous one: that caps the commits (WAL fsyncs on the journal's
        # disk, forwarder wake-ups) at 1/min_interval per second under sustained load, and
        # adds at most min_interval to the latency.
        self._min_interval = min_interval
        self._last_start: float | None = None
        self.in_transaction = False  # a batch is being applied (its commit not reported yet)
        self._queue: collections.deque[JournalRecord] = collections.deque()
        self._wake: defer.Deferred | None = None
        self._sleep: tuple[object, defer.Deferred] | None = None
        self._stopping = False
        self._loop: defer.Deferred | None = None
        self.applied_upto: int | None = None  # known once the store answered
        self.database_ok = False
        self.last_error: str | None = None
        self.last_commit_at: float | None = None
        registry = registry or Registry()
        self._stored = registry.counter("mes_telegrams_stored_total", "Process telegrams newly stored in PostgreSQL, by TC")
        self._duplicates = registry.counter("mes_telegrams_duplicate_total",
                                            "Retransmitted telegrams found already stored, by TC")
        self._rejected = registry.counter("mes_rejected_stored_total", "Rejected telegrams stored for diagnosis")
        self._outboxed = registry.counter("mes_outbox_entries_total",
                                          "Outbox entries committed for forwarding to 고기원, by channel")
        self._writes = registry.counter("mes_pg_writes_total", "PostgreSQL batch transactions, by result (ok, failed)")
        registry.gauge("mes_journal_backlog", "Journal records durable but not yet in PostgreSQL",
                       read=lambda: self.backlog)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def enqueue(self, records: Iterable[JournalRecord]) -> None:
        """Hand over durable records (in journal order)."""
        if len(self._queue) > KEEP_DECODED:
            # A long outage: keep only the bytes of what waits (decoded again when applied),
            # so memory grows by the raw telegrams, not by their decoded copies.
            records = [attrs.evolve(r, decoded=None) if r.decoded is not None else r for r in records]
        self._queue.extend(records)
        if self._wake is not None and self._queue:
            wake, self._wake = self._wake, None
            wake.callback(None)

    def waiting_records(self, limit: int) -> list[JournalRecord] | None:
        """The records durable and not yet committed, in journal order; None when there are
        more than ``limit`` or the progress in the store is not known yet."""
        if self.applied_upto is None or len(self._queue) > limit:
            return None
        upto = self.applied_upto
        return [r for r in self._queue if r.number > upto]

    def start(self, journal: str, consumer: IWriterConsumer | None = None) -> defer.Deferred:
        """Apply the records of journal ``journal`` handed over with ``enqueue``, reporting each
        commit to ``consumer``; the Deferred fires when the writer has stopped."""
        self.journal = journal
        self._consumer = consumer
        self._stopping = False
        self._loop = self._run()
        self._loop.addErrback(lambda failure: log.failure("MES writer stopped by a bug", failure))
        return self._loop

    def stop(self) -> defer.Deferred:
        """Stop after the batch in flight (whatever is not applied stays in the journal)."""
        self._stopping = True
        if self._wake is not None:
            wake, self._wake = self._wake, None
            wake.callback(None)
        if self._sleep is not None:
            call, sleeping = self._sleep
            self._sleep = None
            if call.active():
                call.cancel()
            sleeping.callback(None)
        return self._loop if self._loop is not None else defer.succeed(None)

    # the loop -----------------------------------------------------------------------------

    def _pause(self, seconds: float) -> defer.Deferred:
        sleeping: defer.Deferred = defer.Deferred()

        def done():
            self._sleep = None
            sleeping.callback(None)

        self._sleep = (self._clock.callLater(seconds, done), sleeping)
        return sleeping

    @defer.inlineCallbacks
    def _until_available(self, operation: Callable[[], defer.Deferred], what: str):
        """Run ``operation`` until the store is available (None if stopped meanwhile)."""
        delay = 0.2
        while not self._stopping:
            try:
                result = yield operation()
            except StoreUnavailable as error:
                self._writes.inc(result="failed")
                self.database_ok = False
                self.last_error = str(error)
                log.warn("{what}: database unavailable ({error}); retrying in {delay:.1f}s, "
                         "{backlog} records wait in the journal", what=what, error=error, delay=delay,
                         backlog=self.backlog)
                yield self._pause(delay)
                delay = min(delay * 2, self._max_delay)
                continue
            self.database_ok = True
            return result
        return None

    @defer.inlineCallbacks
    def _run(self):
        self.applied_upto = yield self._until_available(
            lambda: self._store.applied_upto(self.journal), "reading journal progress")
        if self.applied_upto is None:
            return
        log.info("MES writer: journal {journal} applied up to {upto}; {backlog} records to apply",
                 journal=self.journal, upto=self.applied_upto,
                 backlog=sum(1 for r in self._queue if r.number > self.applied_upto))
        while not self._stopping:
            while self._queue and self._queue[0].number <= self.applied_upto:
                self._queue.popleft()
            if not self._queue:
                self._wake = defer.Deferred()
                yield self._wake
                continue
            wait = self._pacing()
            if wait > 0:
                yield self._pause(wait)
                if self._stopping:
                    return
            self._last_start = self._clock.seconds()
            batch = [self._queue[i] for i in range(min(self._batch_size, len(self._queue)))]
            upto = batch[-1].number
            self.in_transaction = True
            try:
                outcome = yield self._apply(batch)
            finally:
                self.in_transaction = False
            if outcome is None:  # stopped while waiting for the database
                return
            for _ in batch:
                self._queue.popleft()
            self.applied_upto = upto
            self.last_commit_at = self._clock.seconds()
            self._count(outcome)
            if self._consumer is not None:
                try:
                    self._consumer.committed(outcome, upto)
                except Exception:
                    log.failure("the writer's consumer failed on the commit up to {upto}", upto=upto)

    def _pacing(self) -> float:
        """Seconds to wait before the next transaction (0: go now)."""
        if not self._min_interval or self._last_start is None or len(self._queue) >= self._batch_size:
            return 0.0
        return self._last_start + self._min_interval - self._clock.seconds()

    @defer.inlineCallbacks
    def _apply(self, batch: list[JournalRecord]):
        upto = batch[-1].number
        try:
            outcome = yield self._until_available(
                lambda: self._store.apply(self.journal, LazyRows(batch, self._layouts), upto),
                                                  f"storing records {batch[0].number}-{upto}")
            if outcome is not None:
                self._writes.inc(result="ok")
            return outcome
        except StoreRefused as error:
            self._writes.inc(result="failed")
            log.warn("database refused the batch {first}-{last} ({error}); storing it record by record",
                     first=batch[0].number, last=upto, error=error)
        total = BatchOutcome()
        for record in batch:
            row = row_for(record, self._layouts)
            try:
                outcome = yield self._until_available(
                    lambda row=row: self._store.apply(self.journal, [row], row.number), f"storing record {row.number}")
            except StoreRefused as error:
                self._writes.inc(result="failed")
                log.error("database refused journal record {number} ({error}); keeping it as a rejected telegram",
                          number=record.number, error=error)
                # Result code 00: it was ACKed (it is safe in the journal); only the database refused it.
                fallback = rejected_row(record, ACCEPTED, f"ACKed, but the database refused it: {error}")
                if isinstance(row, ProcessRow):
                    fallback = attrs.evolve(fallback, tc_code=row.tc_code, sequence_no=row.sequence_no)
                try:
                    outcome = yield self._until_available(
                        lambda: self._store.apply(self.journal, [fallback], record.number),
                        f"storing record {record.number} as rejected")
                except StoreRefused as again:
                    # Never block the records behind it: skip, loudly. It stays readable in the
                    # journal segment until that is applied and removed.
                    log.critical("journal record {number} could not be stored at all ({error}); skipped",
                                 number=record.number, error=again)
                    outcome = yield self._until_available(
                        lambda: self._store.apply(self.journal, [], record.number), "skipping a record")
            if outcome is None:
                return None
            self._writes.inc(result="ok")
            _merge(total, outcome)
        return total

    def _count(self, outcome: BatchOutcome) -> None:
        for tc, count in outcome.stored.items():
            self._stored.inc(count, tc=tc)
        for tc, count in outcome.duplicates.items():
            self._duplicates.inc(count, tc=tc)
        if outcome.rejected:
            self._rejected.inc(outcome.rejected)
        if outcome.forwarded:
            # Counted per channel first: one inc per row cost ~1 us of reactor time each.
            for channel, count in collections.Counter(channel for channel, _, _ in outcome.forwarded).items():
                self._outboxed.inc(count, channel=channel)


def _merge(total: BatchOutcome, part: BatchOutcome) -> None:
    for tc, count in part.stored.items():
        total.stored[tc] = total.stored.get(tc, 0) + count
    for tc, count in part.duplicates.items():
        total.duplicates[tc] = total.duplicates.get(tc, 0) + count
    total.rejected += part.rejected
    total.skipped += part.skipped
    total.channels |= part.channels
    total.forwarded.extend(part.forwarded)
