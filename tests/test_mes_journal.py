"""The durable journal on real files: group commit, order, torn tails, rotation."""

import os
import threading
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from ccl.adapters.storage import journal as journal_module
from ccl.adapters.storage.journal import MAGIC, Journal, JournalError
from ccl.domain.journal_record import REJECTED, TELEGRAM
from ccl.ports import IJournalConsumer


@implementer(IJournalConsumer)
class DurableBatches(list):
    """The journal's consumer here: the record numbers of each batch it hands over."""

    def durable(self, records):
        self.append([r.number for r in records])


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jnl"))


class JournalTests(TestCase):
    def setUp(self):
        self.dir = Path(self.mktemp()).absolute() / "journal"

    def open(self, consumer=None, **kwargs) -> tuple[Journal, list]:
        journal = Journal(reactor, self.dir, **kwargs)
        records = journal.open()
        journal.start(consumer)
        self.addCleanup(journal.stop)
        return journal, records

    def append_many(self, journal, count, start=0):
        return defer.gatherResults([
            journal.append(TELEGRAM, received_at=1700000000.0 + i, peer="10.0.0.1:5000", listener="mes",
                           raw=f"telegram {i:05d} 이알텍".encode("cp949"))
            for i in range(start, start + count)])

    @defer.inlineCallbacks
    def test_appends_are_durable_in_order_and_read_back_after_reopen(self):
        """Appends are written in group commits, numbered in order, and read back the same after reopening."""
        batches = DurableBatches()
        journal, records = self.open(consumer=batches)
        self.assertEqual(records, [])
        written = yield self.append_many(journal, 500)
        self.assertEqual([r.number for r in written], list(range(1, 501)))
        # Group commit: appends made while a write was in flight went out together.
        self.assertLess(len(batches), 500)
        self.assertEqual([n for batch in batches for n in batch], list(range(1, 501)))
        rejected = yield journal.append(REJECTED, received_at=1.5, peer="p", listener="mes", raw=b"\xff\x00junk",
                                        code="13", reason="header unreadable", tc_code=None, sequence_no=None)
        self.assertEqual(rejected.number, 501)
        yield journal.stop()

        again = Journal(reactor, self.dir)
        replayed = again.open()
        self.assertEqual(again.journal_id, journal.journal_id)
        self.assertEqual([r.number for r in replayed], list(range(1, 502)))
        self.assertEqual(replayed[7].raw, "telegram 00007 이알텍".encode("cp949"))
        self.assertEqual((replayed[7].peer, replayed[7].listener, replayed[7].received_at, replayed[7].kind),
                         ("10.0.0.1:5000", "mes", 1700000007.0, TELEGRAM))
        last = replayed[-1]
        self.assertEqual((last.kind, last.code, last.reason, last.raw), (REJECTED, "13", "header unreadable",
                                                                         b"\xff\x00junk"))
        again.start()
        self.addCleanup(again.stop)
        more = yield again.append(TELEGRAM, received_at=2.0, peer="p", listener="mes", raw=b"x")
        self.assertEqual(more.number, 502)

    @defer.inlineCallbacks
    def test_torn_tail_is_cut_at_start_up_and_numbering_continues(self):
        """A torn record at the tail is cut at start-up, and numbering continues after the last whole record."""
        journal, _ = self.open()
        yield self.append_many(journal, 20)
        yield journal.stop()
        (segment,) = segments(self.dir)
        whole = segment.read_bytes()
        # kill -9 in the middle of the write of records 21 and 22: a whole header and half a payload.
        torn = journal_module.encode_record(
            journal_module.JournalRecord(21, TELEGRAM, 3.0, "p", "mes", b"x" * 100))
        segment.write_bytes(whole + torn[:60])
        self.flushLoggedErrors()

        again, records = self.open()
        self.assertEqual([r.number for r in records], list(range(1, 21)))
        self.assertEqual(segment.read_bytes(), whole)
        record = yield again.append(TELEGRAM, received_at=4.0, peer="p", listener="mes", raw=b"after")
        self.assertEqual(record.number, 21)
        yield again.stop()
        self.assertEqual([r.number for r in Journal(reactor, self.dir).open()], list(range(1, 22)))

    @defer.inlineCallbacks
    def test_a_flipped_bit_in_the_last_record_is_caught_by_the_crc(self):
        """A flipped bit in the last record is caught by its CRC and that record dropped."""
        journal, _ = self.open()
        yield self.append_many(journal, 5)
        yield journal.stop()
        (segment,) = segments(self.dir)
        data = bytearray(segment.read_bytes())
        data[-3] ^= 0x01
        segment.write_bytes(bytes(data))
        again, records = self.open()
        self.assertEqual([r.number for r in records], [1, 2, 3, 4])

    @defer.inlineCallbacks
    def test_damage_before_the_tail_sets_the_segment_aside_and_keeps_whole_records(self):
        """Damage inside a segment sets the segment aside as .damaged, keeping the whole records around it."""
        journal, _ = self.open(segment_bytes=300)
        for start in range(0, 60, 5):
            yield self.append_many(journal, 5, start)
        yield journal.stop()
        first = segments(self.dir)[0]
        second_segment_starts = int(segments(self.dir)[1].stem)
        data = bytearray(first.read_bytes())
        whole = journal_module.scan_segment(bytes(data), 1)[0]
        self.assertGreater(len(whole), 2)
        data[len(MAGIC) + len(journal_module.encode_record(whole[0])) + 20] ^= 0xFF  # inside record 2
        first.write_bytes(bytes(data))
        again, records = self.open(segment_bytes=300)
        self.assertEqual(first.with_suffix(".damaged").read_bytes(), bytes(data))
        numbers = [r.number for r in records]
        # Record 1 (before the damage) and every later segment survive.
        self.assertEqual(numbers, [1] + list(range(second_segment_starts, 61)))
        record = yield again.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"next")
        self.assertEqual(record.number, 61)

    @defer.inlineCallbacks
    def test_segments_rotate_and_applied_ones_are_deleted(self):
        """Segments rotate at their size, and those fully applied are deleted."""
        journal, _ = self.open(segment_bytes=2000)
        for start in range(0, 100, 10):
            yield self.append_many(journal, 10, start)
        self.assertGreater(len(segments(self.dir)), 3)
        self.assertEqual(journal.segment_count, len(segments(self.dir)))
        journal.release(50)
        yield journal.when_idle()
        yield journal.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"tick")  # drains the worker
        remaining = segments(self.dir)
        firsts = [int(p.stem) for p in remaining]
        # Every record above 50 is still on disk, nothing at or below 50 needs to be.
        self.assertLessEqual(firsts[0], 51)
        self.assertGreater(firsts[0], 1)
        yield journal.stop()
        records = Journal(reactor, self.dir).open()
        self.assertEqual(records[-1].number, 101)
        self.assertEqual([r.number for r in records], list(range(firsts[0], 102)))

    @defer.inlineCallbacks
    def test_everything_applied_and_deleted_keeps_numbering(self):
        """With every segment applied and deleted, the journal keeps its id and its numbering."""
        journal, _ = self.open(segment_bytes=500)
        yield self.append_many(journal, 30)
        journal.release(30)
        yield journal.stop()
        again, records = self.open(segment_bytes=500)
        record = yield again.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"next")
        self.assertEqual(record.number, 31)
        self.assertEqual(again.journal_id, journal.journal_id)

    def test_an_emptied_directory_is_a_new_journal(self):
        """An emptied journal directory is a new journal, with a new id."""
        journal, _ = self.open()
        old = journal.journal_id
        for path in segments(self.dir):
            path.unlink()
        again = Journal(reactor, self.dir)
        again.open()
        self.assertNotEqual(again.journal_id, old)

    @defer.inlineCallbacks
    def test_a_failed_write_is_not_acknowledged_and_leaves_no_partial_record(self):
        """A failed write (disk full) is not acknowledged and leaves no partial record behind."""
        journal, _ = self.open()
        yield self.append_many(journal, 3)
        real_write = os.write
        calls = []

        def failing_write(fd, data):
            if not calls:
                calls.append(1)
                real_write(fd, bytes(data)[:7])  # a partial write, then the disk is full
                raise OSError(28, "No space left on device")
            return real_write(fd, data)

        self.patch(journal_module.os, "write", failing_write)
        failed = journal.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"lost")
        yield self.assertFailure(failed, JournalError)
        self.flushLoggedErrors(OSError)
        record = yield journal.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"kept")
        self.assertEqual(record.number, 4)
        yield journal.stop()
        records = Journal(reactor, self.dir).open()
        self.assertEqual([(r.number, r.raw) for r in records][-2:], [(3, b"telegram 00002 \xc0\xcc\xbe\xcb\xc5\xd8"),
                                                                     (4, b"kept")])

    @defer.inlineCallbacks
    def test_groups_are_durable_together_in_order_and_renumbered_behind_a_failed_write(self):
        """A group behind a failed write is written together, in order, renumbered without a gap."""
        journal, _ = self.open()
        yield self.append_many(journal, 2)
        real_write = os.write
        calls = []

        gate = threading.Event()

        def failing_once(fd, data):
            if not calls:
                calls.append(1)
                gate.wait(30)  # until the next group is queued behind this write
                raise OSError(28, "No space left on device")
            return real_write(fd, data)

        self.patch(journal_module.os, "write", failing_once)

        def draft(kind, raw, **extra):
            return (kind, 1.0, "10.0.0.1:5000", "mes", raw, extra.get("code"), extra.get("reason"),
                    extra.get("tc_code"), extra.get("sequence_no"), None)

        yield task.deferLater(reactor, 0, lambda: None)  # out of the callbacks of the last write
        lost = journal.append_many([draft(TELEGRAM, b"lost 1"), draft(TELEGRAM, b"lost 2")])
        # Queued while the failing write is under way: numbered 5-7 now, 3-5 once that failed.
        kept = journal.append_many([draft(TELEGRAM, b"kept 1"),
                                    draft(REJECTED, b"kept 2", code="12", reason="bad", tc_code="4003",
                                          sequence_no=9),
                                    draft(TELEGRAM, b"kept 3")])
        gate.set()
        yield self.assertFailure(lost, JournalError)
        self.flushLoggedErrors(OSError)
        group = yield kept
        self.assertEqual([(r.number, r.raw) for r in group], [(3, b"kept 1"), (4, b"kept 2"), (5, b"kept 3")])
        yield journal.stop()
        records = Journal(reactor, self.dir).open()
        self.assertEqual([(r.number, r.kind, r.raw, r.code, r.sequence_no) for r in records][2:],
                         [(3, TELEGRAM, b"kept 1", None, None), (4, REJECTED, b"kept 2", "12", 9),
                          (5, TELEGRAM, b"kept 3", None, None)])

    @defer.inlineCallbacks
    def test_a_failed_write_that_cannot_be_undone_stops_all_appends_until_restart(self):
        """A failed write that cannot be truncated away stops all appends until a restart."""
        journal, _ = self.open()
        yield self.append_many(journal, 3)
        real_write = os.write

        def failing_write(fd, data):
            real_write(fd, bytes(data)[:7])
            raise OSError(5, "Input/output error")

        def failing_truncate(fd, size):
            raise OSError(5, "Input/output error")

        self.patch(journal_module.os, "write", failing_write)
        self.patch(journal_module.os, "ftruncate", failing_truncate)
        yield self.assertFailure(journal.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"a"),
                                 JournalError)
        self.patch(journal_module.os, "write", real_write)
        # Even with the disk back, nothing more is accepted behind the broken bytes.
        yield self.assertFailure(journal.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"b"),
                                 JournalError)
        self.assertIsNotNone(journal.last_error)
        self.flushLoggedErrors(OSError)
        yield journal.stop()
        # A restart cuts the partial bytes and goes on from record 4.
        again, records = self.open()
        self.assertEqual([r.number for r in records], [1, 2, 3])
        record = yield again.append(TELEGRAM, received_at=1.0, peer="p", listener="mes", raw=b"c")
        self.assertEqual(record.number, 4)
