"""Refused telegrams and dead letters through the use cases and the PostgreSQL adapter (real
PostgreSQL): listings, filters, paging, the byte view, and sending a dead letter again."""

from __future__ import annotations

import datetime

from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.refusals import PREVIEW_BYTES, RESEND_ACTION, PgDeadLetters, PgRejectedTelegrams
from ccl.application.refusals import DeadLetters, RejectedTelegrams
from ccl.domain.refusals import NotDead, UnknownEntry
from ccl.domain.telegrams import PLANT_TZ, load_layouts
from ccl.ports import Actor
from tests.support.database import DatabaseTestCase
from tests.support.mes import schedule, speed, wpd

LAYOUTS = load_layouts()
#: The clock of these tests: 2026-03-01 10:00 in the plant.
NOW = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=PLANT_TZ)


def kst(day: int, hour: int, minute: int = 0, month: int = 2) -> datetime.datetime:
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=PLANT_TZ)


def fixed_clock() -> task.Clock:
    clock = task.Clock()
    clock.advance(NOW.timestamp())
    return clock


class RejectedTelegramTests(DatabaseTestCase, TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.start_database()
        self.rejected = RejectedTelegrams(PgRejectedTelegrams(self.db), LAYOUTS, fixed_clock())
        bad = bytearray(speed(5))
        bad[40:44] = b"12x4"
        self.rows = {}
        for name, at, listener, code, tc, seq, raw in [
            ("old", kst(20, 9), "mes", "10", "9999", 1, b"9999" + speed(1)[4:]),
            ("evening", kst(27, 23, 30), "mes", "12", "4003", 5, bytes(bad)),
            ("midnight", kst(28, 0, 10), "mes", "11", "4000", 6, schedule(6)[:100]),
            ("ack_link", kst(28, 8), "gokiwon-ack", "13", None, None, b"\x00garbage"),
            ("today", kst(1, 9, month=3), "mes", "12", "4002", 7, wpd(7)),
        ]:
            self.rows[name] = self.sql(
                "INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, tc_code, sequence_no,"
                " raw) VALUES (%s, '10.0.0.5:4100', %s, %s, %s, %s, %s, %s) RETURNING id",
                (at, listener, code, f"reason of {name}", tc, seq, raw))[0][0]

    def ids(self, listing):
        by_id = {v: k for k, v in self.rows.items()}
        return [by_id[item.id] for item in listing.items]

    @defer.inlineCallbacks
    def test_default_listing_is_the_last_seven_plant_days_newest_first(self):
        """By default the refused telegrams of the last seven plant days are listed newest first, with a preview."""
        listing = yield self.rejected.search(self.rejected.choose({}))
        self.assertEqual(self.ids(listing), ["today", "ack_link", "midnight", "evening"])
        self.assertEqual((listing.total, listing.capped, listing.pages), (4, False, 1))
        first = listing.items[0]
        self.assertEqual((first.peer, first.listener, first.result_code, first.tc_code, first.sequence_no,
                          first.reason), ("10.0.0.5:4100", "mes", "12", "4002", 7, "reason of today"))
        self.assertEqual(first.received_at, kst(1, 9, month=3))
        self.assertEqual(first.raw, wpd(7)[:PREVIEW_BYTES])  # a listing carries the first bytes only

    @defer.inlineCallbacks
    def test_a_period_is_whole_plant_days(self):
        """A period covers whole plant days (Asia/Seoul midnights), not UTC days."""
        listing = yield self.rejected.search(self.rejected.choose({"from": "2026-02-27", "to": "2026-02-27"}))
        self.assertEqual(self.ids(listing), ["evening"])  # 23:30 KST is 14:30 UTC; 00:10 the next day is not in
        listing = yield self.rejected.search(self.rejected.choose({"from": "2026-02-01", "to": "2026-02-28"}))
        self.assertEqual(self.ids(listing), ["ack_link", "midnight", "evening", "old"])

    @defer.inlineCallbacks
    def test_filters_by_tc_code_and_listener(self):
        """Refused telegrams are filtered by TC, result code and listener, together too."""
        wide = {"from": "2026-02-01"}
        listing = yield self.rejected.search(self.rejected.choose({**wide, "code": "12"}))
        self.assertEqual(self.ids(listing), ["today", "evening"])
        listing = yield self.rejected.search(self.rejected.choose({**wide, "tc": "4000"}))
        self.assertEqual(self.ids(listing), ["midnight"])
        listing = yield self.rejected.search(self.rejected.choose({**wide, "listener": "gokiwon-ack"}))
        self.assertEqual(self.ids(listing), ["ack_link"])
        listing = yield self.rejected.search(self.rejected.choose({**wide, "tc": "4000", "code": "12"}))
        self.assertEqual((listing.items, listing.total), ((), 0))

    @defer.inlineCallbacks
    def test_paging_keeps_the_order_and_the_total(self):
        """Paging keeps the newest-first order and the total."""
        for n in range(60):
            self.sql("INSERT INTO rejected_telegrams (received_at, listener, result_code, reason, raw)"
                     " VALUES (%s, 'mes', '13', 'x', %s)", (kst(26, 12) + datetime.timedelta(seconds=n), bytes([n])))
        chosen = self.rejected.choose({"from": "2026-02-26", "to": "2026-02-26", "size": "25", "page": "3"})
        listing = yield self.rejected.search(chosen)
        self.assertEqual((listing.total, listing.pages), (60, 3))
        self.assertEqual([item.raw for item in listing.items], [bytes([n]) for n in range(9, -1, -1)])

    @defer.inlineCallbacks
    def test_show_gives_the_whole_bytes_and_their_dissection(self):
        """Showing a refused telegram gives all its bytes and the dissection; an unknown id is UnknownEntry."""
        found, view = yield self.rejected.show(self.rows["evening"])
        self.assertEqual(len(found.raw), 80)
        self.assertEqual(view.verdict_code, "12")
        self.assertEqual([f.name for f in view.fields if f.problem], ["line_speed"])
        yield self.assertFailure(self.rejected.show(10 ** 9), UnknownEntry)


def outbox_row(sql, channel: str, tc: str, seq: int, raw: bytes, state: str, refused_at=None, attempts: int = 1):
    return sql("INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw, created_at,"
               " state, attempts, refused_at, refused_code) VALUES (%s, 'tc_x', 1, %s, %s, %s, %s, %s, %s, %s, %s)"
               " RETURNING id",
               (channel, tc, seq, raw, kst(27, 8), state, attempts, refused_at,
                "12" if state == "refused" else None))[0][0]


class DeadLetterTests(DatabaseTestCase, TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield self.start_database()
        self.clock = fixed_clock()
        self.letters = DeadLetters(PgDeadLetters(self.db), LAYOUTS, self.clock)
        self.first = outbox_row(self.sql, "schedule", "4000", 1, schedule(1), "refused", kst(27, 9), attempts=2)
        self.second = outbox_row(self.sql, "speed", "4003", 2, speed(2), "refused", kst(28, 9))
        self.delivered = outbox_row(self.sql, "schedule", "4000", 3, schedule(3), "delivered")
        self.pending = outbox_row(self.sql, "wpd", "4002", 4, wpd(4), "pending")

    def audits(self):
        return self.sql("SELECT at, actor, client_address, action, target, result, details->>'state'"
                        " FROM audit_logs ORDER BY id")

    @defer.inlineCallbacks
    def test_lists_only_dead_letters_newest_refusal_first_with_channel_and_tc_filters(self):
        """Only dead letters are listed, newest refusal first, filtered by channel and TC."""
        listing = yield self.letters.search(self.letters.choose({}))
        self.assertEqual([e.id for e in listing.items], [self.second, self.first])
        entry = listing.items[1]
        self.assertEqual((entry.channel, entry.tc_code, entry.sequence_no, entry.state, entry.refused_code,
                          entry.attempts, entry.resent_count, entry.refused_at),
                         ("schedule", "4000", 1, "refused", "12", 2, 0, kst(27, 9)))
        listing = yield self.letters.search(self.letters.choose({"channel": "speed"}))
        self.assertEqual([e.id for e in listing.items], [self.second])
        listing = yield self.letters.search(self.letters.choose({"tc": "4000"}))
        self.assertEqual([e.id for e in listing.items], [self.first])

    @defer.inlineCallbacks
    def test_resend_makes_the_entry_pending_once_and_audits_it_in_the_same_transaction(self):
        """A re-send makes the dead letter pending once and audits it in the same transaction."""
        entry = yield self.letters.resend(self.first, Actor("kim", "10.1.1.9"))
        self.assertEqual((entry.id, entry.state, entry.resent_count, entry.resent_at, entry.attempts),
                         (self.first, "pending", 1, NOW, 2))
        self.assertEqual(self.sql("SELECT state, resent_count, refused_code FROM forward_outbox WHERE id = %s",
                                  (self.first,)), [("pending", 1, "12")])
        self.assertEqual(self.audits(), [(NOW, "kim", "10.1.1.9", RESEND_ACTION, str(self.first), "ok", "pending")])
        # No longer dead: not in the dead letters, but in the re-sent view.
        listing = yield self.letters.search(self.letters.choose({}))
        self.assertEqual([e.id for e in listing.items], [self.second])
        listing = yield self.letters.search(self.letters.choose({"view": "resent"}))
        self.assertEqual([e.id for e in listing.items], [self.first])

    @defer.inlineCallbacks
    def test_an_entry_that_is_not_dead_is_refused_and_the_refusal_audited(self):
        """Re-sending an entry that is not dead (or unknown) is refused and the refusal audited."""
        yield self.letters.resend(self.first, Actor("kim"))
        failure = yield self.assertFailure(self.letters.resend(self.first, Actor("lee")), NotDead)
        self.assertEqual(failure.state, "pending")
        failure = yield self.assertFailure(self.letters.resend(self.delivered, Actor("lee")), NotDead)
        self.assertEqual(failure.state, "delivered")
        yield self.assertFailure(self.letters.resend(10 ** 9, Actor("lee")), UnknownEntry)
        self.assertEqual([(a[1], a[4], a[5]) for a in self.audits()], [
            ("kim", str(self.first), "ok"), ("lee", str(self.first), "not dead (pending)"),
            ("lee", str(self.delivered), "not dead (delivered)"), ("lee", str(10 ** 9), "no such entry")])
        self.assertEqual(self.sql("SELECT resent_count FROM forward_outbox WHERE id = %s", (self.first,)), [(1,)])
        self.assertEqual(self.sql("SELECT state FROM forward_outbox WHERE id = %s", (self.delivered,)),
                         [("delivered",)])

    @defer.inlineCallbacks
    def test_two_resends_at_once_requeue_it_once(self):
        """Two re-sends of one dead letter at once queue it once; the other is refused as not dead."""
        results = yield defer.DeferredList([self.letters.resend(self.second, Actor("kim")),
                                            self.letters.resend(self.second, Actor("lee"))], consumeErrors=True)
        outcomes = sorted("ok" if ok else type(value.value).__name__ for ok, value in results)
        self.assertEqual(outcomes, ["NotDead", "ok"])
        self.assertEqual(self.sql("SELECT state, resent_count FROM forward_outbox WHERE id = %s", (self.second,)),
                         [("pending", 1)])
        self.assertEqual(sorted(a[5] for a in self.audits()), ["not dead (pending)", "ok"])

    @defer.inlineCallbacks
    def test_show_dissects_the_forwarded_bytes(self):
        """Showing a dead letter dissects the bytes that were forwarded; an unknown id is UnknownEntry."""
        entry, view = yield self.letters.show(self.second)
        self.assertEqual((entry.raw, view.layout_name, view.verdict_code), (speed(2), "speed", None))
        yield self.assertFailure(self.letters.show(10 ** 9), UnknownEntry)
