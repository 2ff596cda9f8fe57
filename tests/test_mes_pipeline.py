"""The MES pipeline (ccl.application.mes_pipeline) with plain values and a Clock: which journal
record becomes which outbox entry, and when a forwarder goes live.

The writer and the forwarders are the real ones; the journal, the process store and the
outbox behind them are small in-memory providers of their ports (the process store writes
outbox entries the way PostgreSQL does: in the same step as the rows). The same pipeline
against PostgreSQL and sockets: tests/test_gokiwon_end_to_end.py.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ccl.application.forwarding import ChannelForwarder, ForwardingSettings
from ccl.application.mes_pipeline import MesPipeline, outbox_entries
from ccl.application.store_telegrams import TelegramWriter
from ccl.domain.journal_record import REJECTED, TELEGRAM, BatchOutcome, JournalRecord, ProcessRow, RejectedRow
from ccl.domain.telegrams import decode
from ccl.ports import IJournal, IProcessStore, OutboxEntry
from tests.support.mes import LAYOUTS, cut, schedule, speed, wpd
from tests.test_forwarding import MemoryOutbox, Wire

RECEIVED_AT = 1751524146.0


def record(number: int, raw: bytes, *, decoded: bool = False, kind: str = TELEGRAM) -> JournalRecord:
    return JournalRecord(number=number, kind=kind, received_at=RECEIVED_AT + number, peer="10.1.1.1:4000",
                         listener="mes", raw=raw, decoded=decode(raw, LAYOUTS) if decoded else None)


def speeds(first: int, last: int) -> list[JournalRecord]:
    """Line speed telegrams, journal record n carrying sequence number n."""
    return [record(n, speed(n)) for n in range(first, last + 1)]


@implementer(IJournal)
class MemoryJournal:
    journal_id = "mes-memory"

    def __init__(self, on_disk: list[JournalRecord] = ()):
        self._on_disk = list(on_disk)
        self.last_durable = self._on_disk[-1].number if self._on_disk else 0
        self.consumer = None
        self.released: list[int] = []

    def open(self):
        return list(self._on_disk)

    def start(self, consumer=None):
        self.consumer = consumer

    def release(self, upto):
        self.released.append(upto)

    def stop(self):
        return defer.succeed(None)


@implementer(IProcessStore)
class MemoryProcessStore:
    """Rows counted, outbox entries added to ``outbox`` in the same step; ``hold`` keeps a
    batch's transaction open until ``finish()``."""

    def __init__(self, outbox: MemoryOutbox):
        self.outbox = outbox
        self.upto = 0
        self.hold = False
        self._held: list[tuple[defer.Deferred, list, int]] = []
        self.progress_known = True
        self._progress: list[defer.Deferred] = []

    def applied_upto(self, journal):
        if self.progress_known:
            return defer.succeed(self.upto)
        asked: defer.Deferred = defer.Deferred()
        self._progress.append(asked)
        return asked

    def answer_progress(self) -> None:
        self.progress_known = True
        asked, self._progress = self._progress, []
        for waiting in asked:
            waiting.callback(self.upto)

    def apply(self, journal, rows, upto):
        rows = list(rows)
        if self.hold:
            held: defer.Deferred = defer.Deferred()
            self._held.append((held, rows, upto))
            return held
        return defer.succeed(self._commit(rows, upto))

    def finish(self) -> None:
        held, self._held = self._held, []
        for done, rows, upto in held:
            done.callback(self._commit(rows, upto))

    def _commit(self, rows, upto) -> BatchOutcome:
        outcome = BatchOutcome()
        for row in rows:
            if row.number <= self.upto:
                outcome.skipped += 1
            elif isinstance(row, RejectedRow):
                outcome.rejected += 1
            elif isinstance(row, ProcessRow):
                outcome.stored[row.tc_code] = outcome.stored.get(row.tc_code, 0) + 1
                if row.forward:
                    entry_id = self.outbox.add(row.forward, row.tc_code, row.sequence_no, raw=row.raw)
                    outcome.channels.add(row.forward)
                    outcome.forwarded.append((row.forward, row.number, entry_id))
        self.upto = upto
        return outcome


class OutboxEntriesTests(SynchronousTestCase):
    def test_forwarded_telegrams_become_entries_by_channel_in_journal_order(self):
        """Forwarded telegrams become outbox entries per channel, in journal order; cuts never."""
        records = [
            record(1, schedule(1), decoded=True),  # decoded by the receiver
            record(2, cut(2), decoded=True),  # stored, never forwarded
            record(3, speed(3)),  # replayed: decoded again here
            record(4, speed(4), kind=REJECTED),  # NAKed: never forwarded
            record(5, b"4003 no longer a telegram the layout reads"),  # the writer keeps it as rejected
            record(6, wpd(6)),
            record(7, speed(7), decoded=True),
        ]

        def entry(number, channel, tc_code, raw):
            return number, OutboxEntry(id=None, channel=channel, tc_code=tc_code, sequence_no=number, raw=raw,
                                       created_at=RECEIVED_AT + number)

        self.assertEqual(outbox_entries(records, LAYOUTS), {
            "schedule": [entry(1, "schedule", "4000", schedule(1))],
            "speed": [entry(3, "speed", "4003", speed(3)), entry(7, "speed", "4003", speed(7))],
            "wpd": [entry(6, "wpd", "4002", wpd(6))],
        })

    def test_nothing_to_forward_makes_no_channel(self):
        """Records with nothing to forward make no channel."""
        self.assertEqual(outbox_entries([record(1, cut(1)), record(2, cut(2), decoded=True)], LAYOUTS), {})
        self.assertEqual(outbox_entries([], LAYOUTS), {})


class PipelineTests(SynchronousTestCase):
    """One speed channel; the writer paces transactions 10 s apart under load, so records
    can wait in its queue outside a transaction while the test looks."""

    def setUp(self):
        self.clock = task.Clock()
        self.outbox = MemoryOutbox()
        self.store = MemoryProcessStore(self.outbox)
        self.journal = MemoryJournal()
        self.wire = Wire()

    def pipeline(self, *, live_catch_up: int = 2000, ack_timeout: float = 60.0, **settings) -> MesPipeline:
        writer = TelegramWriter(self.store, LAYOUTS, self.clock, min_interval=10.0)
        rules = ForwardingSettings(ack_timeout=ack_timeout, **settings)
        self.forwarder = ChannelForwarder("speed", self.outbox, self.clock, rules)
        pipeline = MesPipeline(self.journal, writer, {"speed": self.forwarder}, LAYOUTS, live_catch_up=live_catch_up)
        pipeline.start()
        pipeline.start_forwarding()
        self.addCleanup(pipeline.stop_forwarding)
        self.addCleanup(writer.stop)
        return pipeline

    def sent(self) -> list[int]:
        """Sequence numbers of the telegrams on the wire to 고기원, in order."""
        return [decode(raw, LAYOUTS).sequence_no for raw in self.wire.frames]

    def test_the_ports_are_provided(self):
        """The in-memory journal and process store provide their ports."""
        verifyObject(IJournal, self.journal)
        verifyObject(IProcessStore, self.store)

    def test_start_hands_the_recovered_journal_to_the_writer_before_anything_new(self):
        """At start the recovered journal goes to the writer before anything new."""
        self.journal = MemoryJournal(speeds(1, 3))
        pipeline = self.pipeline()
        self.assertIs(self.journal.consumer, pipeline)
        self.assertEqual(pipeline.writer.applied_upto, 3)  # committed at once: the writer was idle
        self.assertEqual(self.journal.released, [3])
        pipeline.durable(speeds(4, 4))
        self.clock.advance(10)
        self.assertEqual(self.journal.released, [3, 4])
        self.assertEqual([self.outbox.rows[i]["entry"].sequence_no for i in sorted(self.outbox.rows)], [1, 2, 3, 4])

    def test_a_commit_releases_the_journal_and_wakes_the_forwarder_of_a_channel_with_new_rows(self):
        """A commit releases the journal and wakes the forwarders of channels with new rows."""
        pipeline = self.pipeline()
        self.forwarder.attach(self.wire)
        pipeline.durable(speeds(1, 2) + [record(3, cut(3))])
        # The writer was idle: committed at once; the forwarder read its rows on the commit's
        # wake-up, with no poll.
        self.assertEqual(self.journal.released, [3])
        self.assertEqual(self.sent(), [1, 2])

    def test_a_caught_up_forwarder_goes_live_with_the_records_not_yet_committed(self):
        """A caught-up forwarder goes live with the records not yet committed."""
        pipeline = self.pipeline()
        pipeline.durable(speeds(1, 2))  # committed at once: outbox ids 1, 2 reported
        pipeline.durable(speeds(3, 4))  # waits 10 s for the writer's next transaction
        self.assertEqual((pipeline.writer.applied_upto, pipeline.writer.in_transaction), (2, False))
        self.assertFalse(self.forwarder.live)  # 고기원 away: never live

        self.forwarder.attach(self.wire)  # sends rows 1, 2 from the outbox
        pipeline.wake(["speed"])  # a read that finds nothing more: caught up
        self.assertTrue(self.forwarder.live)
        # Rows 1-2 from the store, 3-4 from the writer's queue: everything, once, in order.
        self.assertEqual(self.sent(), [1, 2, 3, 4])

        pipeline.durable(speeds(5, 5))  # live: on the wire before PostgreSQL has it
        self.assertEqual(self.sent(), [1, 2, 3, 4, 5])
        self.assertEqual(pipeline.writer.applied_upto, 2)
        self.clock.advance(10)  # 3-5 committed: their entries get their outbox ids, nothing is resent
        self.assertEqual(pipeline.writer.applied_upto, 5)
        for seq in range(1, 6):
            self.assertTrue(self.forwarder.ack("4003", seq, "00"))
        self.assertEqual({row["state"] for row in self.outbox.rows.values()}, {"delivered"})
        self.assertEqual(self.sent(), [1, 2, 3, 4, 5])

    def test_before_the_first_commit_report_a_writer_in_transaction_keeps_the_forwarder_on_the_outbox(self):
        """Before the first commit report, a writer in a transaction keeps the forwarder on the outbox."""
        pipeline = self.pipeline()
        self.forwarder.attach(self.wire)
        self.store.hold = True
        pipeline.durable(speeds(1, 2))  # in a transaction whose rows are not visible yet
        pipeline.wake(["speed"])
        # Going live now could hand over records whose rows a later read also finds.
        self.assertEqual((pipeline.writer.in_transaction, self.forwarder.limit), (True, None))
        self.assertFalse(self.forwarder.live)
        self.assertEqual(self.sent(), [])

        self.store.finish()  # committed and reported: read from the outbox up to id 2, then live
        self.assertEqual(self.forwarder.limit, 2)
        self.assertTrue(self.forwarder.live)
        self.assertEqual(self.sent(), [1, 2])

    def test_not_live_while_more_records_wait_for_the_writer_than_the_catch_up_limit(self):
        """No going live while more records wait for the writer than the catch-up limit."""
        pipeline = self.pipeline(live_catch_up=2)
        pipeline.durable(speeds(1, 1))
        pipeline.durable(speeds(2, 4))  # three wait for the writer
        self.forwarder.attach(self.wire)
        pipeline.wake(["speed"])
        self.assertFalse(self.forwarder.live)
        self.assertEqual(self.sent(), [1])
        self.clock.advance(10)  # the writer caught up: its commit's wake-up makes it live
        self.assertTrue(self.forwarder.live)
        self.assertEqual(self.sent(), [1, 2, 3, 4])

    def test_not_live_when_the_hand_over_would_fill_half_the_live_queue(self):
        """No going live when the hand-over would fill half the live queue."""
        pipeline = self.pipeline(live_queue=4)  # room for 2 at the moment it goes live
        pipeline.durable(speeds(1, 1))
        pipeline.durable(speeds(2, 4))  # three wait for the writer
        self.forwarder.attach(self.wire)
        pipeline.wake(["speed"])
        self.assertFalse(self.forwarder.live)
        pipeline.durable(speeds(5, 5))  # not live: these come from the outbox after their commit
        self.assertEqual(self.sent(), [1])
        self.clock.advance(10)
        self.assertEqual(self.sent(), [1, 2, 3, 4, 5])

    def test_not_live_while_the_writer_does_not_know_its_progress(self):
        """No going live while the writer does not know its progress."""
        self.store.progress_known = False  # PostgreSQL has not answered yet
        pipeline = self.pipeline()
        self.forwarder.attach(self.wire)
        pipeline.wake(["speed"])
        self.assertIsNone(pipeline.writer.applied_upto)
        self.assertFalse(self.forwarder.live)
        self.store.answer_progress()
        pipeline.wake(["speed"])
        self.assertTrue(self.forwarder.live)

    def test_records_reach_the_writer_and_nothing_goes_live_once_forwarding_stopped(self):
        """Once forwarding stopped, records still reach the writer and the journal, and nothing is sent."""
        pipeline = self.pipeline()
        self.forwarder.attach(self.wire)
        pipeline.wake(["speed"])
        self.assertTrue(self.forwarder.live)
        pipeline.stop_forwarding()
        pipeline.durable(speeds(1, 2))
        self.assertEqual(self.sent(), [])
        self.assertEqual(pipeline.writer.applied_upto, 2)
        self.assertEqual(self.journal.released, [2])
