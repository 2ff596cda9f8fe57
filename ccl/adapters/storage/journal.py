"""The durable MES journal: local append-only files, group-committed, replayed at start-up.

Why it exists: the MES gets its ACK only once a telegram is safe on disk, and PostgreSQL
being down or slow must never hold the line up. So every received telegram (taken or
refused) is appended here first; the writer applies the journal to PostgreSQL later, in
order, and records how far it got (``journal_progress``) in the same transaction.

On disk: ``<dir>/<first record number, 20 digits>.jnl`` segments, each starting with
``MAGIC``, then records::

    >II   payload length, CRC32 of the payload
    payload = >QdcHHI number, received_at, kind (b"T"|b"R"), len(peer), len(listener),
              len(meta); then peer, listener, meta (JSON, rejected records only), raw

A crash in the middle of a write leaves a torn tail: a short header, a short payload or a
CRC mismatch. ``open()`` cuts the last segment back to its last whole record (those bytes
were never fsync'd, so never ACKed). Damage anywhere else cannot come from a crash; the
segment is set aside as ``.damaged`` for a person to look at and its whole records are kept.

Group commit: ``append()`` queues an encoded record and returns a Deferred. One dedicated
worker thread writes everything queued so far with one ``write`` to a file opened with
``O_DSYNC`` (the write returns once the bytes are on disk, like write + ``fdatasync``);
appends made meanwhile form the next batch. Each Deferred fires (in append order) after
its batch is on disk, so callers reply in order and the reactor never waits on the disk.

``journal_id``: a random name made when the directory is first used (file ``journal.id``).
Progress in PostgreSQL is kept under that name, so a journal directory that is wiped and
started afresh (numbers from 1 again) can never be mistaken for one already applied.
"""

from __future__ import annotations

import collections
import json
import operator
import os
import secrets
import struct
import time
import zlib
from pathlib import Path

import attrs
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from ccl.domain.journal_record import REJECTED, TELEGRAM, JournalRecord
from ccl.ports import IJournal, IJournalConsumer

log = Logger()

MAGIC = b"CCLJNL1\n"
SUFFIX = ".jnl"
_HEAD = struct.Struct(">II")
_FIXED = struct.Struct(">QdcHHI")
_KIND_BYTE = {TELEGRAM: b"T", REJECTED: b"R"}
_BYTE_KIND = {v: k for k, v in _KIND_BYTE.items()}
#: No record is anywhere near this; a larger length field is damage, not data.
MAX_PAYLOAD = 1 << 20


class JournalError(Exception):
    """The journal could not make a record durable (disk full, I/O error); nothing was ACKed."""


def encode_record(record: JournalRecord) -> bytes:
    peer = record.peer.encode("utf-8", "replace")
    listener = record.listener.encode("utf-8", "replace")
    meta = b""
    if record.kind == REJECTED:
        meta = json.dumps({"code": record.code, "reason": record.reason, "tc_code": record.tc_code,
                           "sequence_no": record.sequence_no}, ensure_ascii=False).encode("utf-8")
    payload = b"".join((
        _FIXED.pack(record.number, record.received_at, _KIND_BYTE[record.kind], len(peer), len(listener), len(meta)),
        peer, listener, meta, record.raw,
    ))
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> JournalRecord:
    number, received_at, kind, peer_len, listener_len, meta_len = _FIXED.unpack_from(payload)
    at = _FIXED.size
    peer = payload[at:at + peer_len].decode("utf-8", "replace")
    at += peer_len
    listener = payload[at:at + listener_len].decode("utf-8", "replace")
    at += listener_len
    meta = json.loads(payload[at:at + meta_len]) if meta_len else {}
    at += meta_len
    return JournalRecord(number=number, kind=_BYTE_KIND[kind], received_at=received_at, peer=peer,
                         listener=listener, raw=bytes(payload[at:]), code=meta.get("code"),
                         reason=meta.get("reason"), tc_code=meta.get("tc_code"),
                         sequence_no=meta.get("sequence_no"))


def scan_segment(data: bytes, expected_first: int) -> tuple[list[JournalRecord], int, str | None]:
    """Whole records of one segment's bytes: (records, end of the last whole record, problem or None)."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            return [], 0, "segment header torn" if data else None
        return [], 0, "not a journal segment (bad magic)"
    records: list[JournalRecord] = []
    at = len(MAGIC)
    expected = expected_first
    while at < len(data):
        if len(data) - at < _HEAD.size:
            return records, at, f"torn record header at byte {at}"
        length, crc = _HEAD.unpack_from(data, at)
        if length < _FIXED.size or length > MAX_PAYLOAD:
            return records, at, f"impossible record length {length} at byte {at}"
        payload = data[at + _HEAD.size:at + _HEAD.size + length]
        if len(payload) < length:
            return records, at, f"torn record at byte {at} ({len(payload)} of {length} bytes)"
        if zlib.crc32(payload) != crc:
            return records, at, f"CRC mismatch at byte {at}"
        try:
            record = decode_payload(payload)
        except (ValueError, KeyError, struct.error, UnicodeDecodeError) as error:
            return records, at, f"unreadable record at byte {at}: {error}"
        if record.number != expected:
            return records, at, f"record number {record.number} where {expected} was due, at byte {at}"
        records.append(record)
        expected += 1
        at += _HEAD.size + length
    return records, at, None


def _segment_name(first: int) -> str:
    return f"{first:020d}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SegmentFile:
    """The open segment; used only from the journal's worker thread (and open()/close())."""

    def __init__(self, directory: Path, first: int, fsync: bool, create: bool):
        self.path = directory / _segment_name(first)
        self.first = first
        self.broken: str | None = None
        # O_DSYNC: each write returns once its bytes are on disk, as write + fdatasync would,
        # in one system call (the worker thread takes the GIL back once per batch, not twice).
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | (os.O_DSYNC if fsync else 0), 0o640)
        self.size = os.lseek(self._fd, 0, os.SEEK_END)
        if create and self.size == 0:
            self._write_all(MAGIC)
            os.fsync(self._fd)
            _fsync_dir(directory)
            self.size = len(MAGIC)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, data: bytes) -> None:
        if self.broken:
            raise OSError(f"journal segment {self.path} is unusable after a failed write: {self.broken}")
        start = self.size
        try:
            self._write_all(data)
        except OSError as error:
            # Leave no partial batch behind: the next batch must follow whole records.
            try:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            except OSError as again:
                # Writing after those bytes would put acknowledged records behind a broken
                # one; refuse everything until a restart cuts the tail.
                self.broken = f"{error}; truncating back failed: {again}"
            raise
        self.size = start + len(data)

    def close(self) -> None:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


@implementer(IJournal)
class Journal:
    """Append-only, fsync'd, group-committed record log with torn-tail recovery.

    Use: ``open()`` (synchronous, before listening; returns the records on disk),
    ``start(consumer)``, ``append(...)``, ``release(upto)`` once records are applied, ``stop()``.
    The consumer (the MES pipeline) gets each batch of records, in order, once it is on disk.
    """

    def __init__(self, reactor, directory: Path, *, fsync: bool = True, segment_bytes: int = 64 << 20):
        self._reactor = reactor
        self.directory = Path(directory)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.journal_id = ""
        self._consumer: IJournalConsumer | None = None
        self._pool = ThreadPool(1, 1, name="ccl-journal")
        self._segments: list[int] = []  # first record number of each segment on disk, ascending
        self._file: _SegmentFile | None = None
        self._next = 1
        #: Groups of records queued for the next write: (records, their bytes, Deferred of the group).
        self._pending: list[tuple[list[JournalRecord], list[bytes], defer.Deferred]] = []
        self._writing = False
        self._idle: list[defer.Deferred] = []
        self._released = 0
        self.last_durable = 0
        #: Why the last write failed, until a write succeeds again (for /health).
        self.last_error: str | None = None
        self._closed = False
        #: Durations of the recent batch writes (write + fsync) and their sizes, for /health.
        self.write_seconds: collections.deque[float] = collections.deque(maxlen=4000)
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=4000)

    # start-up ----------------------------------------------------------------------------

    def open(self) -> list[JournalRecord]:
        """Recover the directory: cut a torn tail, set damage aside; return every whole record."""
        self.directory.mkdir(parents=True, exist_ok=True)
        firsts = sorted(int(p.name[:-len(SUFFIX)]) for p in self.directory.glob("*" + SUFFIX)
                        if p.name[:-len(SUFFIX)].isdigit())
        # No segment at all: numbering starts again at 1, so it must be a journal of a new name.
        self.journal_id = self._load_id(fresh=not firsts)
        records: list[JournalRecord] = []
        kept: list[int] = []
        for index, first in enumerate(firsts):
            path = self.directory / _segment_name(first)
            data = path.read_bytes()
            found, end, problem = scan_segment(data, first)
            last_segment = index == len(firsts) - 1
            if records and found and found[0].number != records[-1].number + 1:
                log.critical("journal {path}: records {low}-{high} are missing (a segment was removed "
                             "by hand?)", path=str(path), low=records[-1].number + 1, high=found[0].number - 1)
            if problem and last_segment:
                log.warn("journal {path}: {problem}; cutting {dropped} bytes of an unfinished write "
                         "(never acknowledged)", path=str(path), problem=problem, dropped=len(data) - end)
                with open(path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
                if end == 0:
                    path.unlink()
                    continue
            elif problem:
                damaged = path.with_suffix(".damaged")
                log.critical("journal {path}: {problem}; segment moved to {damaged} for inspection; "
                             "its {count} whole records are kept", path=str(path), problem=problem,
                             damaged=str(damaged), count=len(found))
                path.rename(damaged)
                if found:
                    # Keep the good records in a fresh segment of their own.
                    rewrite = self.directory / _segment_name(first)
                    with open(rewrite, "wb") as handle:
                        handle.write(MAGIC + b"".join(encode_record(r) for r in found))
                        os.fsync(handle.fileno())
                else:
                    continue
            records.extend(found)
            kept.append(first)
        if records:
            self._next = records[-1].number + 1
        # A segment's name is the first number it holds (or would hold): never number below it.
        self._next = max(self._next, firsts[-1] if firsts else 1)
        self.last_durable = self._next - 1
        self._released = records[0].number - 1 if records else self.last_durable
        # Append to the last segment, or start one named by the next number.
        self._file = _SegmentFile(self.directory, kept[-1] if kept else self._next, self.fsync, create=True)
        self._segments = kept or [self._file.first]
        _fsync_dir(self.directory)
        log.info("journal {dir} ({id}) opened: {count} records on disk, next number {next}",
                 dir=str(self.directory), id=self.journal_id, count=len(records), next=self._next)
        return records

    def _load_id(self, fresh: bool) -> str:
        path = self.directory / "journal.id"
        if not fresh:
            try:
                text = path.read_text(encoding="ascii").strip()
                if text:
                    return text
            except FileNotFoundError:
                pass
        text = "mes-" + secrets.token_hex(6)
        temp = path.with_suffix(".tmp")
        temp.write_text(text + "\n", encoding="ascii")
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        temp.rename(path)
        _fsync_dir(self.directory)
        return text

    def start(self, consumer: IJournalConsumer | None = None) -> None:
        """Take appends from now on; each batch on disk goes to ``consumer.durable(records)``
        before the appends' Deferreds fire (so before anything is ACKed)."""
        self._consumer = consumer
        self._pool.start()

    # appending ---------------------------------------------------------------------------

    def append(self, kind: str, *, received_at: float, peer: str, listener: str, raw: bytes,
               code: str | None = None, reason: str | None = None, tc_code: str | None = None,
               sequence_no: int | None = None, decoded: object | None = None) -> defer.Deferred:
        """Queue one record; the Deferred fires with the JournalRecord once it is on disk
        (or fails with JournalError, in which case nothing may be acknowledged)."""
        done = self.append_many([(kind, received_at, peer, listener, raw, code, reason, tc_code, sequence_no,
                                  decoded)])
        return done.addCallback(operator.itemgetter(0))

    def append_many(self, drafts: list[tuple]) -> defer.Deferred:
        """Queue records, in order, as one group; the Deferred fires with their JournalRecords
        once all are on disk (or fails with JournalError: none may be acknowledged).

        A draft is the tuple ``(kind, received_at, peer, listener, raw, code, reason, tc_code,
        sequence_no, decoded)``. The receiver hands over everything one TCP read brought in one
        call: a Deferred per telegram cost more CPU than the rest of the journal.
        """
        if self._closed:
            return defer.fail(JournalError("journal is closed (service stopping)"))
        number = self._next
        records = []
        blobs = []
        for kind, received_at, peer, listener, raw, code, reason, tc_code, sequence_no, decoded in drafts:
            record = JournalRecord(number=number, kind=kind, received_at=received_at, peer=peer, listener=listener,
                                   raw=bytes(raw), code=code, reason=reason, tc_code=tc_code,
                                   sequence_no=sequence_no, decoded=decoded)
            records.append(record)
            blobs.append(encode_record(record))
            number += 1
        self._next = number
        done: defer.Deferred = defer.Deferred()
        self._pending.append((records, blobs, done))
        if not self._writing:
            self._write_next()
        return done

    def _write_next(self) -> None:
        batch, self._pending = self._pending, []
        self._writing = True
        blob = b"".join(data for _, blobs, _ in batch for data in blobs)
        last = batch[-1][0][-1].number
        writing = threads.deferToThreadPool(self._reactor, self._pool, self._write_batch, blob, last)
        writing.addBoth(self._written, batch)

    def _write_batch(self, blob: bytes, last: int) -> tuple[int | None, float]:
        """Worker thread: one synchronous (O_DSYNC) write for the whole batch; rotate when full.
        Returns (first number of a new segment or None, seconds the write + fsync took)."""
        assert self._file is not None
        started = time.perf_counter()
        self._file.append(blob)
        took = time.perf_counter() - started
        if self._file.size < self.segment_bytes:
            return None, took
        try:
            fresh = _SegmentFile(self.directory, last + 1, self.fsync, create=True)
        except OSError as error:
            # The batch itself is on disk: never fail it for this. Keep appending to the
            # full segment and try again after the next batch.
            log.error("journal: cannot start a new segment ({error}); continuing in {path}",
                      error=str(error), path=str(self._file.path))
            return None, took
        full, self._file = self._file, fresh
        try:
            full.close()
        except OSError as error:  # its records are on disk already
            log.error("journal: closing {path} failed: {error}", path=str(full.path), error=str(error))
        return last + 1, took

    def _written(self, result, batch) -> None:
        # _writing stays True until every callback ran: an append made from a callback must
        # queue behind this batch, not start a second write that a failure here would not renumber.
        records = [record for group, _, _ in batch for record in group]
        if isinstance(result, Failure):
            log.failure("journal write of records {first}-{last} failed; they are NOT acknowledged",
                        result, first=records[0].number, last=records[-1].number)
            # Numbers must stay gap-free on disk: later queued records are renumbered.
            self._renumber_after_failure(records[0].number)
            error = JournalError(f"journal write failed: {result.getErrorMessage()}")
            self.last_error = str(error)
            for _, _, done in batch:
                done.errback(error)
        else:
            self.last_error = None
            new_segment, took = result
            self.write_seconds.append(took)
            self.batch_sizes.append(len(records))
            if new_segment is not None:
                self._segments.append(new_segment)
            self.last_durable = records[-1].number
            if self._consumer is not None:
                try:
                    self._consumer.durable(records)
                except Exception:
                    log.failure("journal consumer failed on records {first}-{last}",
                                first=records[0].number, last=records[-1].number)
            for group, _, done in batch:
                done.callback(group)
        self._writing = False
        if self._pending:
            self._write_next()
        else:
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)

    def _renumber_after_failure(self, first_failed: int) -> None:
        self._next = first_failed
        renumbered = []
        for group, _, done in self._pending:
            fresh_group = [attrs.evolve(record, number=self._next + index) for index, record in enumerate(group)]
            self._next += len(group)
            renumbered.append((fresh_group, [encode_record(record) for record in fresh_group], done))
        self._pending = renumbered

    # applied records ---------------------------------------------------------------------

    @property
    def next_number(self) -> int:
        return self._next

    def release(self, upto: int) -> None:
        """Records up to ``upto`` are safely in PostgreSQL: delete segments holding nothing newer."""
        if upto <= self._released:
            return
        self._released = upto
        doomed = []
        while len(self._segments) > 1 and self._segments[1] - 1 <= upto:
            doomed.append(self._segments.pop(0))
        if doomed:
            paths = [self.directory / _segment_name(first) for first in doomed]
            threads.deferToThreadPool(self._reactor, self._pool, self._delete, paths).addErrback(
                lambda failure: log.failure("could not delete applied journal segments", failure))

    @staticmethod
    def _delete(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)
            log.info("journal segment {path} fully applied; deleted", path=str(path))

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # shutdown ----------------------------------------------------------------------------

    def when_idle(self) -> defer.Deferred:
        """Fires once nothing is queued or being written."""
        if not self._writing and not self._pending:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self._idle.append(waiter)
        return waiter

    @defer.inlineCallbacks
    def stop(self):
        yield self.when_idle()
        self._closed = True
        if self._pool.started:
            # Let queued deletions finish; stop() joins the worker thread.
            yield threads.deferToThreadPool(self._reactor, self._pool, lambda: None)
            self._pool.stop()
        if self._file is not None:
            self._file.close()
            self._file = None
