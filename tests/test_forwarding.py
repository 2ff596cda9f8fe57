"""The per-channel outbox state machine (ccl.application.forwarding) with plain values and a Clock.

The store here is a small in-memory IOutboxStore: these tests are about the rules of the
state machine; tests/test_gokiwon_forwarding.py runs it against PostgreSQL and sockets.
"""

from __future__ import annotations

import attrs
from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ccl.application.forwarding import ChannelForwarder, ForwardingSettings
from ccl.ports import IForwarderConsumer, IOutboxStore, OutboxEntry


@implementer(IOutboxStore)
class MemoryOutbox:
    def __init__(self):
        self.rows: dict[int, dict] = {}
        self.fetches = 0
        self.hold_writes = False
        self._held: list[defer.Deferred] = []

    def add(self, channel, tc_code, sequence_no, raw=None, created_at=0.0, entry_id=None):
        entry_id = entry_id or (max(self.rows, default=0) + 1)
        raw = raw or f"{tc_code}#{sequence_no}".encode()
        self.rows[entry_id] = {"entry": OutboxEntry(entry_id, channel, tc_code, sequence_no, raw, created_at),
                               "state": "pending", "attempts": 0, "code": None}
        return entry_id

    def state(self, entry_id):
        return self.rows[entry_id]["state"]

    def fetch_pending(self, channel, after_id, limit, before_id=None, exclude=None):
        self.fetches += 1
        found = [attrs.evolve(r["entry"], attempts=r["attempts"]) for i, r in sorted(self.rows.items())
                 if r["state"] == "pending" and r["entry"].channel == channel and i > after_id
                 and (before_id is None or i < before_id) and i not in (exclude or [])]
        return defer.succeed(found[:limit])

    def record_sent(self, entry_id, at):
        self.rows[entry_id]["attempts"] += 1
        return defer.succeed(None)

    def _write(self):
        if self.hold_writes:
            held = defer.Deferred()
            self._held.append(held)
            return held
        return defer.succeed(None)

    def mark_delivered(self, entry_id, at):
        self.rows[entry_id]["state"] = "delivered"
        return self._write()

    def mark_refused(self, entry_id, result_code, at):
        self.rows[entry_id].update(state="refused", code=result_code)
        return self._write()


@implementer(IForwarderConsumer)
class CaughtUp:
    """A forwarder's consumer here: calls ``then(channel)`` when it has caught up."""

    def __init__(self, then):
        self.caught_up = then


class Wire:
    def __init__(self):
        self.frames: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.frames.append(data)


class ForwarderTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.store = MemoryOutbox()
        self.counts: list[tuple[str, str]] = []

    def forwarder(self, **settings) -> ChannelForwarder:
        forwarder = ChannelForwarder("speed", self.store, self.clock, ForwardingSettings(**settings),
                                     count=lambda name, channel: self.counts.append((name, channel)))
        forwarder.start()
        self.addCleanup(forwarder.stop)
        return forwarder

    def fill(self, n, start=1, tc="4003"):
        return [self.store.add("speed", tc, seq) for seq in range(start, start + n)]

    def test_store_provides_port(self):
        """The in-memory outbox store provides the IOutboxStore port."""
        verifyObject(IOutboxStore, self.store)

    def test_sends_in_order_within_window(self):
        """Entries go out in order, at most a window unanswered at a time."""
        self.fill(40)
        forwarder = self.forwarder(window=16)
        wire = Wire()
        forwarder.attach(wire)
        self.assertEqual(wire.frames, [f"4003#{i}".encode() for i in range(1, 17)])
        self.assertTrue(forwarder.ack("4003", 1, "00"))
        self.assertEqual(wire.frames[-1], b"4003#17")
        for seq in range(2, 41):
            forwarder.ack("4003", seq, "00")
        self.assertEqual(wire.frames, [f"4003#{i}".encode() for i in range(1, 41)])
        self.assertEqual({self.store.state(i) for i in self.store.rows}, {"delivered"})
        self.assertEqual(forwarder.stats.delivered, 40)
        self.assertEqual(forwarder.in_flight, 0)

    def test_nothing_sent_while_disconnected(self):
        """Nothing is sent, nor counted as attempted, while disconnected."""
        self.fill(3)
        forwarder = self.forwarder()
        self.clock.advance(60)
        self.assertEqual(forwarder.queued, 3)
        self.assertEqual({r["attempts"] for r in self.store.rows.values()}, {0})

    def test_resend_same_bytes_after_timeout_until_acked(self):
        """An entry without an answer is resent, the same bytes, after ack_timeout until ACKed."""
        self.store.add("speed", "4003", 7, raw=b"exact bytes")
        forwarder = self.forwarder(ack_timeout=10)
        wire = Wire()
        forwarder.attach(wire)
        self.clock.advance(9.9)
        self.assertEqual(wire.frames, [b"exact bytes"])
        self.clock.advance(0.2)
        self.assertEqual(wire.frames, [b"exact bytes"] * 2)
        self.clock.advance(10)
        self.assertEqual(len(wire.frames), 3)
        self.assertTrue(forwarder.ack("4003", 7, "00"))
        self.clock.advance(100)
        self.assertEqual(len(wire.frames), 3)
        self.assertEqual(forwarder.stats.resent, 2)
        self.assertEqual(self.store.rows[1]["attempts"], 3)
        self.assertEqual(self.store.state(1), "delivered")

    def test_nak_moves_entry_aside_and_channel_goes_on(self):
        """A NAKed entry is moved aside and the channel goes on."""
        self.fill(3)
        forwarder = self.forwarder(window=1)
        wire = Wire()
        forwarder.attach(wire)
        self.assertTrue(forwarder.ack("4003", 1, "12"))
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2"])
        forwarder.ack("4003", 2, "00")
        forwarder.ack("4003", 3, "00")
        self.assertEqual([self.store.state(i) for i in (1, 2, 3)], ["refused", "delivered", "delivered"])
        self.assertEqual(self.store.rows[1]["code"], "12")
        self.assertIn(("refused", "speed"), self.counts)
        self.clock.advance(60)
        self.assertEqual(len(wire.frames), 3)  # the refused one is not sent again

    def test_unknown_ack_ignored(self):
        """An ACK for no entry in flight is ignored."""
        self.fill(1)
        forwarder = self.forwarder()
        forwarder.attach(Wire())
        self.assertFalse(forwarder.ack("4003", 999, "00"))
        self.assertFalse(forwarder.ack("4000", 1, "00"))
        self.assertEqual(self.store.state(1), "pending")
        self.assertTrue(forwarder.ack("4003", 1, "00"))
        self.assertFalse(forwarder.ack("4003", 1, "00"))  # a second ACK for the same: nothing left

    def test_wrapped_sequence_numbers_match_oldest_first(self):
        """With a sequence number in flight twice (wrapped), an ACK answers the oldest first."""
        # 999999 then 1 again: two entries with the same key at once.
        first = self.store.add("speed", "4003", 5, raw=b"old")
        self.store.add("speed", "4003", 999999, raw=b"mid")
        second = self.store.add("speed", "4003", 5, raw=b"new")
        forwarder = self.forwarder(window=16)
        forwarder.attach(Wire())
        self.assertTrue(forwarder.ack("4003", 5, "00"))
        self.assertEqual((self.store.state(first), self.store.state(second)), ("delivered", "pending"))
        self.assertTrue(forwarder.ack("4003", 5, "00"))
        self.assertEqual(self.store.state(second), "delivered")

    def test_reconnect_resends_in_flight_first_in_order(self):
        """After a reconnect the unanswered entries go out first, in order."""
        self.fill(5)
        forwarder = self.forwarder(window=3)
        first = Wire()
        forwarder.attach(first)
        forwarder.ack("4003", 2, "00")  # 1 and 3 still unanswered, 4 went out
        self.assertEqual(first.frames, [b"4003#1", b"4003#2", b"4003#3", b"4003#4"])
        forwarder.detach()
        forwarder.ack("4003", 3, "00")  # a late ACK for an entry waiting to be resent still counts
        second = Wire()
        forwarder.attach(second)
        self.assertEqual(second.frames, [b"4003#1", b"4003#4", b"4003#5"])

    def test_require_ack_off_delivers_on_write(self):
        """With require_ack off, an entry written counts as delivered."""
        self.fill(20)
        forwarder = self.forwarder(require_ack=False, window=2)
        wire = Wire()
        forwarder.attach(wire)
        self.clock.advance(1)
        self.assertEqual(len(wire.frames), 20)
        self.assertEqual({self.store.state(i) for i in self.store.rows}, {"delivered"})
        self.clock.advance(60)
        self.assertEqual(len(wire.frames), 20)

    def test_drain_rate_paces_backlog_oldest_first(self):
        """drain_rate paces a backlog, oldest first."""
        self.fill(100)
        forwarder = self.forwarder(require_ack=False, drain_rate=10, window=1)
        wire = Wire()
        forwarder.attach(wire)
        self.assertEqual(len(wire.frames), 1)
        self.clock.pump([0.1] * 10)
        sent_after_a_second = len(wire.frames)
        self.assertTrue(9 <= sent_after_a_second <= 12, sent_after_a_second)
        self.store.add("speed", "4003", 5000)  # a new one queues behind the backlog
        forwarder.wake()
        self.clock.pump([0.1] * 100)
        self.assertEqual(wire.frames, [f"4003#{i}".encode() for i in range(1, 101)] + [b"4003#5000"])

    def test_wake_reads_new_entries(self):
        """wake() reads and sends new entries."""
        forwarder = self.forwarder()
        wire = Wire()
        forwarder.attach(wire)
        self.fill(2)
        self.assertEqual(wire.frames, [])
        forwarder.wake()
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2"])

    def test_wake_during_a_read_reads_again(self):
        """A wake during a read reads again after it."""
        self.store.add("speed", "4003", 1)
        slow = defer.Deferred()
        fetch = self.store.fetch_pending
        calls = []

        def first_one_slow(*args, **kwargs):
            calls.append(args)
            return slow if len(calls) == 1 else fetch(*args, **kwargs)

        self.store.fetch_pending = first_one_slow
        forwarder = self.forwarder(require_ack=False)
        wire = Wire()
        forwarder.attach(wire)
        self.store.add("speed", "4003", 2)  # committed while the first read is under way
        forwarder.wake()
        slow.callback([self.store.rows[1]["entry"]])  # the read saw only the first
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2"])

    def test_rescan_finds_entry_committed_behind_cursor(self):
        """A rescan finds an entry committed behind the read cursor."""
        self.store.add("speed", "4003", 2, entry_id=2)
        forwarder = self.forwarder(require_ack=False)
        wire = Wire()
        forwarder.attach(wire)
        self.assertEqual(wire.frames, [b"4003#2"])
        self.store.add("speed", "4003", 1, entry_id=1)  # lower id, committed later
        forwarder.wake()
        self.assertEqual(wire.frames, [b"4003#2"])
        forwarder.rescan()
        self.assertEqual(wire.frames, [b"4003#2", b"4003#1"])
        self.assertEqual(self.store.state(1), "delivered")

    def test_rescan_does_not_resend_answered_entries_not_yet_written(self):
        """A rescan does not resend an answered entry whose state is not yet written."""
        self.fill(1)
        forwarder = self.forwarder()
        wire = Wire()
        forwarder.attach(wire)
        self.store.hold_writes = True
        forwarder.ack("4003", 1, "00")
        self.store.rows[1]["state"] = "pending"  # as PostgreSQL sees it until the write lands
        forwarder.rescan()
        self.assertEqual(wire.frames, [b"4003#1"])

    def test_rescan_reading_before_an_answer_is_written_does_not_send_it_again(self):
        """Two rescans under way at once (a slow database) both see an entry behind the cursor
        pending: the first sends it and its ACK is written; the second, coming back after
        that, does not send it again. Once it is pending again (a dead letter sent again from
        the UI) the next rescan takes it."""
        self.store.add("speed", "4003", 2, entry_id=2)
        forwarder = self.forwarder()
        wire = Wire()
        forwarder.attach(wire)
        forwarder.ack("4003", 2, "00")
        self.store.add("speed", "4003", 1, entry_id=1)  # behind the cursor
        reads = []
        fetch = self.store.fetch_pending

        def slow_fetch(*args, **kwargs):
            seen = fetch(*args, **kwargs).result  # what the read sees when it starts
            held = defer.Deferred()
            reads.append((held, seen))
            return held

        self.store.fetch_pending = slow_fetch
        forwarder.rescan()
        forwarder.rescan()
        self.store.fetch_pending = fetch
        (first, seen_first), (second, seen_second) = reads
        self.assertEqual([e.id for e in seen_first + seen_second], [1, 1])
        first.callback(seen_first)
        self.assertEqual(wire.frames, [b"4003#2", b"4003#1"])
        forwarder.ack("4003", 1, "12")  # refused, and written
        self.assertEqual(self.store.state(1), "refused")
        second.callback(seen_second)  # an old view: 1 still pending
        self.assertEqual(wire.frames, [b"4003#2", b"4003#1"])
        self.store.rows[1]["state"] = "pending"  # sent again from the UI
        forwarder.rescan()
        self.assertEqual(wire.frames, [b"4003#2", b"4003#1", b"4003#1"])

    def test_restart_resends_what_the_store_still_calls_pending(self):
        """After a restart, what the store still calls pending is sent again."""
        self.fill(3)
        forwarder = self.forwarder()
        forwarder.attach(Wire())
        forwarder.ack("4003", 1, "00")
        forwarder.stop()
        again = self.forwarder()
        wire = Wire()
        again.attach(wire)
        self.assertEqual(wire.frames, [b"4003#2", b"4003#3"])
        self.assertEqual(again.stats.resent, 2)

    def test_loads_in_batches(self):
        """Entries are loaded in batches, all sent in order."""
        self.fill(25)
        forwarder = self.forwarder(batch=10, require_ack=False)
        wire = Wire()
        forwarder.attach(wire)
        self.clock.advance(1)
        self.assertEqual(wire.frames, [f"4003#{i}".encode() for i in range(1, 26)])


def live(number: int, sequence_no: int, tc: str = "4003", created_at: float = 0.0) -> tuple[int, OutboxEntry]:
    """A telegram just made durable by the journal (record ``number``): no outbox id yet."""
    return number, OutboxEntry(None, "speed", tc, sequence_no, f"{tc}#{sequence_no}".encode(), created_at)


class LiveForwardingTests(SynchronousTestCase):
    """Straight from the journal once caught up; outbox ids given after the commit (bind)."""

    setUp = ForwarderTests.setUp
    forwarder = ForwarderTests.forwarder
    fill = ForwarderTests.fill

    def caught_up_forwarder(self, **settings) -> ChannelForwarder:
        forwarder = self.forwarder(**settings)
        self.assertFalse(forwarder.can_go_live())  # not while 고기원 is away
        return forwarder

    def test_not_live_while_disconnected(self):
        """A forwarder cannot go live while disconnected."""
        forwarder = self.forwarder()
        self.assertFalse(forwarder.can_go_live())
        forwarder.attach(Wire())
        self.assertTrue(forwarder.can_go_live())
        forwarder.detach()
        self.assertFalse(forwarder.can_go_live())

    def commit(self, forwarder, numbers_and_seqs, applied_upto):
        """What the MES writer does: rows in the store, then bind() with their ids."""
        pairs = [(number, self.store.add("speed", "4003", seq)) for number, seq in numbers_and_seqs]
        forwarder.bind(pairs, applied_upto)
        return [entry_id for _, entry_id in pairs]

    def test_reading_from_the_store_signals_caught_up_once_everything_is_loaded(self):
        """The forwarder signals caught up once everything in the store is loaded."""
        self.fill(25)
        forwarder = ChannelForwarder("speed", self.store, self.clock, ForwardingSettings(batch=10))
        signals = []
        forwarder.start(CaughtUp(lambda channel: signals.append(forwarder.can_go_live())))
        self.addCleanup(forwarder.stop)
        self.assertEqual(signals, [])  # ten loaded, more in the store: not caught up
        forwarder.attach(Wire())
        for seq in range(1, 26):
            forwarder.ack("4003", seq, "00")
        self.assertTrue(signals)
        self.assertTrue(all(signals))

    def test_live_entries_go_out_before_their_rows_exist_and_are_recorded_after_the_commit(self):
        """Live entries go out before their rows exist and are recorded after the commit."""
        self.fill(2)
        forwarder = self.caught_up_forwarder()
        wire = Wire()
        forwarder.attach(wire)
        forwarder.go_live([live(10, 3)])
        forwarder.offer([live(11, 4), live(12, 5)])
        self.assertTrue(forwarder.live)
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2", b"4003#3", b"4003#4", b"4003#5"])
        fetches = self.store.fetches
        self.assertTrue(forwarder.ack("4003", 3, "00"))  # faster than the commit
        self.assertTrue(forwarder.ack("4003", 4, "12"))
        ids = self.commit(forwarder, [(10, 3), (11, 4), (12, 5)], applied_upto=12)
        self.assertEqual([self.store.state(i) for i in ids], ["delivered", "refused", "pending"])
        self.assertEqual([self.store.rows[i]["attempts"] for i in ids], [1, 1, 1])
        self.assertTrue(forwarder.ack("4003", 5, "00"))
        self.assertEqual(self.store.state(ids[2]), "delivered")
        forwarder.wake()  # a commit's wake-up: nothing to read while live
        self.assertEqual(self.store.fetches, fetches)
        self.assertEqual((forwarder.stats.delivered, forwarder.stats.refused), (2, 1))

    def test_live_entry_that_got_no_outbox_row_is_dropped_unsent(self):
        """A live entry that got no outbox row (a retransmission) is dropped unsent."""
        forwarder = self.caught_up_forwarder(window=1)
        wire = Wire()
        forwarder.attach(wire)
        forwarder.go_live([live(1, 7), live(2, 7), live(3, 8)])  # 2: the MES sent 7 again
        self.assertEqual(wire.frames, [b"4003#7"])
        (first, third) = self.commit(forwarder, [(1, 7), (3, 8)], applied_upto=3)
        forwarder.ack("4003", 7, "00")
        forwarder.ack("4003", 8, "00")
        self.assertEqual(wire.frames, [b"4003#7", b"4003#8"])
        self.assertEqual((self.store.state(first), self.store.state(third)), ("delivered", "delivered"))
        self.assertEqual(forwarder.queued + forwarder.in_flight, 0)

    def test_rowless_entry_in_flight_is_forgotten_when_answered_or_timed_out(self):
        """A row-less entry in flight is forgotten once answered or timed out, never resent."""
        forwarder = self.caught_up_forwarder(ack_timeout=5)
        wire = Wire()
        forwarder.attach(wire)
        forwarder.go_live([live(1, 7), live(2, 8)])
        forwarder.bind([], applied_upto=2)  # neither got a row (both already stored earlier)
        self.assertTrue(forwarder.ack("4003", 7, "00"))
        self.clock.advance(6)
        self.assertEqual(wire.frames, [b"4003#7", b"4003#8"])  # 8 is not sent again
        self.assertEqual((forwarder.in_flight, forwarder.queued), (0, 0))
        self.assertEqual(self.store.rows, {})

    def test_reconnect_resends_unanswered_live_entries_first_in_order(self):
        """After a reconnect, unanswered live entries go out first, in order."""
        forwarder = self.caught_up_forwarder(window=2)
        first = Wire()
        forwarder.attach(first)
        forwarder.go_live([live(1, 1), live(2, 2), live(3, 3)])
        forwarder.detach()
        self.commit(forwarder, [(1, 1)], applied_upto=1)  # one commit while disconnected
        second = Wire()
        forwarder.attach(second)
        self.assertEqual(first.frames, [b"4003#1", b"4003#2"])
        self.assertEqual(second.frames, [b"4003#1", b"4003#2"])
        forwarder.ack("4003", 1, "00")
        self.assertEqual(second.frames, [b"4003#1", b"4003#2", b"4003#3"])
        self.assertEqual(self.store.rows[1]["attempts"], 2)
        self.assertEqual(self.store.state(1), "delivered")

    def test_too_much_held_falls_back_to_the_store_without_loss_or_reorder(self):
        """Too many live entries held fall back to reading the store, without loss or reordering."""
        forwarder = self.caught_up_forwarder(live_queue=5, batch=4, require_ack=False)
        forwarder.attach(Wire())
        forwarder.go_live([])
        forwarder.detach()  # 고기원 goes away: nothing goes out, the live queue grows
        forwarder.offer([live(n, n) for n in range(1, 4)])
        self.commit(forwarder, [(1, 1), (2, 2)], applied_upto=2)
        forwarder.offer([live(n, n) for n in range(4, 7)])  # six queued: too many
        self.assertFalse(forwarder.live)
        self.assertEqual(forwarder.queued, 2)  # the two with ids; the rest comes from the store
        self.commit(forwarder, [(n, n) for n in range(3, 9)], applied_upto=8)
        forwarder.wake()
        wire = Wire()
        forwarder.attach(wire)
        self.clock.pump([0.01] * 10)
        self.assertEqual(wire.frames, [f"4003#{n}".encode() for n in range(1, 9)])
        self.assertEqual({self.store.state(i) for i in self.store.rows}, {"delivered"})

    def test_not_live_while_a_read_is_under_way_or_the_queue_is_full(self):
        """A forwarder cannot go live while a read is under way or its queue is full."""
        self.fill(3)
        reads: list[defer.Deferred] = []  # each read its own Deferred, answered by the test

        def read(*args, **kwargs):
            reads.append(defer.Deferred())
            return reads[-1]

        self.store.fetch_pending = read
        forwarder = self.forwarder(batch=2)
        forwarder.attach(Wire())
        self.assertFalse(forwarder.can_go_live())  # reading
        reads[0].callback([self.store.rows[i]["entry"] for i in (1, 2)])
        # A full batch: there may be more, so it reads on, and is not live meanwhile.
        self.assertEqual(len(reads), 2)
        self.assertFalse(forwarder.can_go_live())
        reads[1].callback([self.store.rows[3]["entry"]])
        self.assertTrue(forwarder.can_go_live())

    def test_reads_from_the_store_only_up_to_the_last_reported_commit(self):
        """The store is read only up to the last commit the writer reported."""
        self.fill(3)  # 3: committed, but the writer has not reported it yet
        forwarder = ChannelForwarder("speed", self.store, self.clock, ForwardingSettings(require_ack=False))
        forwarder.limit = 2
        wire = Wire()
        forwarder.attach(wire)
        forwarder.start()
        self.addCleanup(forwarder.stop)
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2"])
        self.assertTrue(forwarder.can_go_live())
        forwarder.go_live([live(7, 3)])  # record 7 is the one behind row 3
        forwarder.limit = 3
        forwarder.bind([(7, 3)], applied_upto=7)
        self.assertEqual(wire.frames, [b"4003#1", b"4003#2", b"4003#3"])
        self.assertEqual(self.store.state(3), "delivered")

    def test_stop_forgets_live_entries_without_an_id_and_a_start_reads_them_from_the_store(self):
        """Stop forgets live entries without an id; the next start reads them from the store."""
        forwarder = self.caught_up_forwarder(window=1)
        wire = Wire()
        forwarder.attach(wire)
        forwarder.go_live([live(1, 1), live(2, 2)])
        forwarder.stop()
        ids = [self.store.add("speed", "4003", seq) for seq in (1, 2)]  # committed meanwhile
        forwarder.start()
        again = Wire()
        forwarder.attach(again)
        self.assertFalse(forwarder.live)
        self.assertEqual(again.frames, [b"4003#1"])
        forwarder.ack("4003", 1, "00")
        forwarder.ack("4003", 2, "00")
        self.assertEqual(again.frames, [b"4003#1", b"4003#2"])
        self.assertEqual([self.store.state(i) for i in ids], ["delivered", "delivered"])
