"""The MES receive path over real loopback sockets into a real PostgreSQL database."""

import datetime
import decimal

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.postgres import Database
from ccl.domain.metrics import parse_text
from tests.support.database import fresh_database, query
from tests.support.mes import (
    alive, connect, cut, schedule, speed, start_service, wait_for, wpd,
)


def count(dsn, table):
    return query(dsn, f"SELECT count(*) FROM {table}")[0][0]


class ReceivePathTests(TestCase):
    @defer.inlineCallbacks
    def test_telegrams_become_typed_rows_outbox_rows_and_events(self):
        """Telegrams are ACKed, stored as typed rows with their outbox rows, and announced; alives are not ACKed."""
        dsn = fresh_database(self)
        listener = Database(reactor, dsn, 1)
        self.addCleanup(listener.close)
        yield listener.start()
        events = []
        yield listener.listen("ccl_events", events.append)
        service = yield start_service(self, dsn)
        client = yield connect(self, service)
        stream = [schedule(1, "H477707", "이알텍㈜"), schedule(2, "H477708", "똠방각하"), wpd(3), speed(4, 118),
                  cut(5), alive(6, 7)]
        client.transport.write(b"".join(stream))
        yield client.wait_replies(5)
        self.assertEqual([(r.tc_code, r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in client.replies],
                         [("4900", "4000", 1, "00"), ("4900", "4000", 2, "00"), ("4900", "4002", 3, "00"),
                          ("4900", "4003", 4, "00"), ("4900", "4001", 5, "00")])
        yield wait_for(lambda: count(dsn, "tc_4001_cut") == 1, what="rows in PostgreSQL")

        rows = query(dsn, "SELECT tc_code, line_code, sequence_no, sent_at, peer, coil_number, customer_name, "
                          "thickness, width, weight, length_value, through_plate, sequence_order, raw "
                          "FROM tc_4000_schedule ORDER BY id")
        self.assertEqual(len(rows), 2)
        first = rows[0]
        self.assertEqual(first[:3], ("4000", "CCL1", 1))
        self.assertEqual(first[3], datetime.datetime(2025, 7, 3, 6, 29, 6, tzinfo=datetime.timezone.utc))
        self.assertTrue(first[4].startswith("127.0.0.1:"))
        self.assertEqual(first[5:13], ("H477707", "이알텍㈜", decimal.Decimal("0.372"), 1212, 7950, 3449, "Z", 1))
        self.assertEqual(bytes(first[13]), stream[0])
        self.assertEqual(rows[1][6], "똠방각하")
        self.assertEqual(query(dsn, "SELECT coil_number FROM tc_4002_wpd"), [("H477707",)])
        self.assertEqual(query(dsn, "SELECT line_speed FROM tc_4003_speed"), [(118,)])
        self.assertEqual(query(dsn, "SELECT coil_number, cut_mode, winding_length FROM tc_4001_cut"),
                         [("H477707", 1, 3449)])

        # Outbox rows for the forwarded TCs only (4000 schedule, 4002 wpd, 4003 speed; never 4001),
        # byte for byte, pointing at their source rows.
        outbox = query(dsn, "SELECT channel, source_table, tc_code, sequence_no, raw, state FROM forward_outbox "
                            "ORDER BY id")
        self.assertEqual([o[:4] for o in outbox],
                         [("schedule", "tc_4000_schedule", "4000", 1), ("schedule", "tc_4000_schedule", "4000", 2),
                          ("wpd", "tc_4002_wpd", "4002", 3), ("speed", "tc_4003_speed", "4003", 4)])
        self.assertEqual([bytes(o[4]) for o in outbox], stream[:4])
        self.assertEqual({o[5] for o in outbox}, {"pending"})
        joined = query(dsn, "SELECT count(*) FROM forward_outbox o JOIN tc_4000_schedule s "
                            "ON o.source_table = 'tc_4000_schedule' AND s.id = o.source_id AND s.raw = o.raw")
        self.assertEqual(joined, [(2,)])

        # Alive: no reply, no row, but the peer was seen.
        self.assertEqual(count(dsn, "rejected_telegrams"), 0)
        peers = service.links.snapshot()["peers"]
        self.assertEqual(peers["127.0.0.1"]["alive_count"], 7)

        yield wait_for(lambda: len(events) == 5, what="5 NOTIFY events")
        self.assertEqual([(e["table"], e["tc_code"], e["coil_number"]) for e in events],
                         [("tc_4000_schedule", "4000", "H477707"), ("tc_4000_schedule", "4000", "H477708"),
                          ("tc_4002_wpd", "4002", "H477707"), ("tc_4003_speed", "4003", None),
                          ("tc_4001_cut", "4001", "H477707")])
        self.assertEqual(events[0]["id"], query(dsn, "SELECT min(id) FROM tc_4000_schedule")[0][0])
        progress = query(dsn, "SELECT journal, applied_upto FROM journal_progress")
        self.assertEqual(progress, [(service.journal.journal_id, 5)])
        # The writer reported every channel that got outbox rows (the MES pipeline wakes their
        # forwarders on each such report: tests/test_mes_pipeline.py).
        committed = [{labels["channel"] for name, labels, _ in parse_text(service.registry.render())
                      if name == "ccl_mes_outbox_entries_total"}]
        self.assertEqual(set().union(*committed), {"schedule", "wpd", "speed"})

        # The link's state reaches link_status for the UI.
        yield service.links.save()
        link = query(dsn, "SELECT link, kind, connected, alive_count, last_seen_at IS NOT NULL FROM link_status")
        self.assertEqual(link, [("mes:127.0.0.1", "mes", True, 7, True)])

    @defer.inlineCallbacks
    def test_retransmission_is_stored_once_and_acked_again(self):
        """A retransmitted telegram is ACKed again but stored and forwarded once, and counted as duplicate."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn)
        client = yield connect(self, service)
        client.transport.write(schedule(9) + wpd(10))
        yield client.wait_replies(2)
        yield wait_for(lambda: count(dsn, "tc_4002_wpd") == 1)
        # The MES did not see our ACKs and sends both again, on a new connection.
        again = yield connect(self, service)
        again.transport.write(schedule(9) + wpd(10))
        yield again.wait_replies(2)
        self.assertEqual([(r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in again.replies],
                         [("4000", 9, "00"), ("4002", 10, "00")])
        yield wait_for(lambda: service.writer.backlog == 0 and service.writer.applied_upto == 4)
        self.assertEqual(count(dsn, "tc_4000_schedule"), 1)
        self.assertEqual(count(dsn, "tc_4002_wpd"), 1)
        self.assertEqual(count(dsn, "forward_outbox"), 2)
        registry = service.registry.render()
        self.assertIn('ccl_mes_telegrams_duplicate_total{tc="4000"} 1', registry)
        self.assertIn('ccl_mes_telegrams_stored_total{tc="4000"} 1', registry)


class AtomicityTests(TestCase):
    @defer.inlineCallbacks
    def test_row_and_outbox_share_one_transaction_and_a_refused_record_does_not_stop_the_rest(self):
        """A row and its outbox row commit together; one PostgreSQL refuses is kept aside, the rest stored."""
        dsn = fresh_database(self)
        # Make PostgreSQL refuse outbox rows of one channel: the speed row must then not be
        # stored either (same transaction), and the telegrams around it must be.
        query(dsn, "ALTER TABLE forward_outbox ADD CONSTRAINT test_no_speed CHECK (channel <> 'speed')")
        service = yield start_service(self, dsn)
        client = yield connect(self, service)
        client.transport.write(schedule(1) + speed(2) + cut(3) + wpd(4))
        yield client.wait_replies(4)  # ACKed: the journal has them, whatever PostgreSQL says later
        yield wait_for(lambda: service.writer.applied_upto == 4, what="batch applied")
        self.assertEqual(count(dsn, "tc_4003_speed"), 0)
        self.assertEqual(query(dsn, "SELECT channel FROM forward_outbox ORDER BY id"), [("schedule",), ("wpd",)])
        self.assertEqual((count(dsn, "tc_4000_schedule"), count(dsn, "tc_4001_cut"), count(dsn, "tc_4002_wpd")),
                         (1, 1, 1))
        (kept,) = query(dsn, "SELECT result_code, reason, raw, tc_code, sequence_no FROM rejected_telegrams")
        self.assertEqual(kept[0], "00")  # it was ACKed; only the database refused it
        self.assertIn("database refused it", kept[1])
        self.assertIn("test_no_speed", kept[1])
        self.assertEqual((bytes(kept[2]), kept[3], kept[4]), (speed(2), "4003", 2))


class JournalHousekeepingTests(TestCase):
    @defer.inlineCallbacks
    def test_fully_applied_segments_are_deleted(self):
        """Journal segments fully applied to PostgreSQL are deleted; the newest stays."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, journal_segment_bytes=4096)
        client = yield connect(self, service)
        for start in range(1, 201, 20):
            client.transport.write(b"".join(speed(n) for n in range(start, start + 20)))
            yield client.wait_replies(start + 19)
        yield wait_for(lambda: service.writer.applied_upto == 200, what="all applied")
        directory = service.journal.directory
        # 200 records of ~150 bytes made several 4 KB segments; all but the newest are deleted.
        yield wait_for(lambda: len(list(directory.glob("*.jnl"))) == 1, what="applied segments deleted")
        (segment,) = directory.glob("*.jnl")
        self.assertGreater(int(segment.stem), 100)
        self.assertEqual(count(dsn, "tc_4003_speed"), 200)


class ReplayTests(TestCase):
    @defer.inlineCallbacks
    def test_start_up_replays_the_journal_after_cutting_a_torn_tail(self):
        """At start-up the journal's torn tail is cut and the ACKed records are replayed into PostgreSQL."""
        from pathlib import Path

        from ccl.adapters.storage.journal import Journal

        dsn = fresh_database(self)
        var = Path(self.mktemp()).absolute()
        var.mkdir(parents=True)
        # A previous run journaled (and ACKed) three telegrams, then died writing a fourth.
        journal = Journal(reactor, var / "journal")
        journal.open()
        journal.start()
        for raw in (schedule(1), cut(2), speed(3)):
            yield journal.append("telegram", received_at=1751524146.0, peer="10.1.1.1:4000", listener="mes", raw=raw)
        yield journal.stop()
        (segment,) = (var / "journal").glob("*.jnl")
        with open(segment, "ab") as handle:
            handle.write(b"\x00\x00\x01\x00\x12\x34")  # the start of a record header, nothing more

        service = yield start_service(self, dsn, var=var)
        yield wait_for(lambda: service.writer.applied_upto == 3, what="replayed")
        self.assertEqual(query(dsn, "SELECT peer, sequence_no FROM tc_4000_schedule"), [("10.1.1.1:4000", 1)])
        self.assertEqual((count(dsn, "tc_4001_cut"), count(dsn, "tc_4003_speed"), count(dsn, "rejected_telegrams")),
                         (1, 1, 0))
        client = yield connect(self, service)
        client.transport.write(speed(4))
        yield client.wait_replies(1)
        yield wait_for(lambda: service.writer.applied_upto == 4, what="new telegram numbered after the replay")
        self.assertEqual(count(dsn, "tc_4003_speed"), 2)


class WireTests(TestCase):
    @defer.inlineCallbacks
    def test_ack_and_nak_bytes_on_the_wire(self):
        """ACKs and NAKs on the wire are exactly the encoder's 60 bytes, numbered in order."""
        from ccl.domain.telegrams import decode, encode_ack

        from tests.support.mes import LAYOUTS

        dsn = fresh_database(self)
        service = yield start_service(self, dsn)
        client = yield connect(self, service)
        client.transport.write(schedule(41) + b"\x01\x02junk" + cut(42))
        yield client.wait_replies(3)
        self.assertEqual(len(client.raw), 3 * 60)
        expected = [("4000", 41, "00"), ("0000", 0, "13"), ("4001", 42, "00")]
        for index, ((tc, seq, code), reply) in enumerate(zip(expected, client.replies), start=1):
            sent_at = decode(reply.raw, LAYOUTS).sent_at
            self.assertEqual(reply.raw, encode_ack(LAYOUTS, acked_tc_code=tc, acked_sequence_no=seq, result_code=code,
                                                   line_code="CCL1", sequence_no=index, sent_at=sent_at))
        self.assertEqual(client.raw[:20], b"4900CCL1000001000060")
        self.assertEqual(client.raw[60:80], b"4901CCL1000002000060")
        self.assertEqual(client.raw[100:112], b"000000000013")
