"""Bad input on the MES port: each gets its NAK or a clean close, is kept, and harms nobody else."""

from pathlib import Path

from twisted.internet import defer, endpoints, protocol, reactor
from twisted.trial.unittest import TestCase

from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, connect, port_of, schedule, speed, start_service, wait_for, wpd

VECTORS = {
    line.split("\t")[0]: bytes.fromhex(line.split("\t")[1])
    for line in (Path(__file__).parent / "data" / "vectors.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
}


def rejected(dsn):
    return query(dsn, "SELECT result_code, reason, tc_code, sequence_no, raw, peer, listener "
                      "FROM rejected_telegrams ORDER BY id")


def with_header(telegram: bytes, **fields) -> bytes:
    """``telegram`` with some header fields overwritten by raw bytes."""
    out = bytearray(telegram)
    for name, value in fields.items():
        start, end = LAYOUTS.header_spans[name]
        assert len(value) == end - start
        out[start:end] = value
    return bytes(out)


class BadTelegramTests(TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.dsn = fresh_database(self)
        self.service = yield start_service(self, self.dsn)

    @defer.inlineCallbacks
    def refused_then_taken(self, bad: bytes, code: str, acked_tc: str, acked_sequence: int):
        """Send ``bad`` followed by a good telegram: a NAK with ``code``, then an ACK."""
        client = yield connect(self, self.service)
        good = speed(777)
        client.transport.write(bad + good)
        yield client.wait_replies(2)
        self.assertEqual([(r.tc_code, r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in client.replies],
                         [("4901", acked_tc, acked_sequence, code), ("4900", "4003", 777, "00")])
        yield wait_for(lambda: len(rejected(self.dsn)) == 1 and query(self.dsn, "SELECT count(*) FROM tc_4003_speed")
                       == [(1,)], what="rejected row and good row")
        (row,) = rejected(self.dsn)
        self.assertEqual(row[0], code)
        metrics = self.service.registry.render()
        self.assertIn(f'ccl_mes_replies_sent_total{{result="{code}"}} 1', metrics)
        self.assertIn('ccl_mes_replies_sent_total{result="00"} 1', metrics)
        self.assertIn(f'code="{code}"', metrics.split("ccl_mes_telegrams_rejected_total", 1)[1])
        self.assertTrue(row[1])
        self.assertEqual(bytes(row[4]), bad)
        self.assertTrue(row[5].startswith("127.0.0.1:"))
        self.assertEqual(row[6], "mes")
        # Nothing of it reached the process tables.
        counts = query(self.dsn, "SELECT (SELECT count(*) FROM tc_4000_schedule), (SELECT count(*) FROM tc_4001_cut),"
                                 " (SELECT count(*) FROM tc_4002_wpd)")
        self.assertEqual(counts, [(0, 0, 0)])
        return row

    def test_unknown_tc_code_10(self):
        """An unknown TC is NAKed with 10 and kept aside; the next telegram is taken."""
        return self.refused_then_taken(VECTORS["unknown-tc"], "10", "4005", 7)

    def test_length_field_wrong_for_the_tc_11(self):
        """A length field wrong for the TC is NAKed with 11 and kept aside; the next telegram is taken."""
        return self.refused_then_taken(VECTORS["bad-length"], "11", "4003", 8)

    def test_field_format_error_12(self):
        """A malformed field is NAKed with 12 and kept aside; the next telegram is taken."""
        return self.refused_then_taken(VECTORS["bad-number"], "12", "4003", 9)

    def test_impossible_date_12(self):
        """An impossible date is NAKed with 12 and kept aside; the next telegram is taken."""
        return self.refused_then_taken(VECTORS["bad-date"], "12", "4002", 10)

    def test_bytes_that_are_not_cp949_12(self):
        """Text that is not CP949 is NAKed with 12 and kept aside; the next telegram is taken."""
        bad = bytearray(schedule(11))
        start = LAYOUTS.header_length + 12 + 10 + 2 + 20  # customer_name
        bad[start:start + 2] = b"\xff\xfe"
        return self.refused_then_taken(bytes(bad), "12", "4000", 11)

    def test_unreadable_tc_code_13(self):
        """An unreadable TC is NAKed with 13 for TC 0000; the next telegram is taken."""
        # No TC, no NAK target: acked TC 0000 and sequence 0.
        return self.refused_then_taken(with_header(wpd(12), tc_code=b"4X02"), "13", "0000", 12)

    def test_unreadable_sequence_number_13(self):
        """An unreadable sequence number is NAKed with 13 and sequence 0; the next telegram is taken."""
        return self.refused_then_taken(with_header(wpd(13), sequence_no=b"00A013"), "13", "4002", 0)

    @defer.inlineCallbacks
    def test_garbage_between_telegrams_costs_only_itself(self):
        """Garbage between telegrams is NAKed and kept aside by itself; the telegrams around it are taken."""
        client = yield connect(self, self.service)
        junk = b"\x00\xff noise from a bad cable \r\n" * 3
        client.transport.write(schedule(1) + junk + wpd(2) + b"x" + speed(3))
        # The NAK carries whatever the sequence field position held, when it reads as a number:
        # behind "x" that is "100000", six bytes of the next telegram's header.
        noise = int((b"x" + speed(3))[8:14])
        yield client.wait_replies(5)
        self.assertEqual([(r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in client.replies],
                         [("4000", 1, "00"), ("0000", 0, "13"), ("4002", 2, "00"), ("0000", noise, "13"),
                          ("4003", 3, "00")])
        yield wait_for(lambda: len(rejected(self.dsn)) == 2)
        self.assertEqual([bytes(r[4]) for r in rejected(self.dsn)], [junk, b"x"])

    @defer.inlineCallbacks
    def test_a_header_claiming_a_megabyte_is_never_buffered(self):
        """A header claiming a megabyte is NAKed once and its bytes skipped, never buffered."""
        client = yield connect(self, self.service)
        yield wait_for(lambda: len(self.service.factory.connections) == 1)
        (server_side,) = self.service.factory.connections
        largest = []
        feed = server_side.framer.feed

        def watched_feed(data):
            items = feed(data)
            largest.append(server_side.framer.buffered)
            return items

        server_side.framer.feed = watched_feed
        # The largest length the field can state (999999), then that much body, then a good telegram.
        client.transport.write(with_header(schedule(5), length=b"999999")[:40])
        for _ in range(16):
            client.transport.write(b"y" * 62500)
        client.transport.write(speed(6))
        yield client.wait_replies(2)
        self.assertEqual([(r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in client.replies],
                         [("4000", 5, "11"), ("4003", 6, "00")])  # one NAK for the whole run, not one per piece
        self.assertLess(max(largest), 70 * 1024)
        self.assertEqual(server_side.framer.buffered, 0)
        yield wait_for(lambda: sum(len(bytes(r[4])) for r in rejected(self.dsn)) == 40 + 1000000,
                       what="all refused bytes kept")

    @defer.inlineCallbacks
    def test_a_lone_bad_telegram_is_nakked_without_waiting_for_more_bytes(self):
        """A lone bad telegram is NAKed at once, without waiting for more bytes."""
        # A sender that waits for each reply before sending on must not wait for idle_timeout.
        client = yield connect(self, self.service)
        client.transport.write(with_header(speed(5), length=b"000081"))
        yield client.wait_replies(1)
        self.assertEqual((client.replies[0].acked_tc_code, client.replies[0].result_code), ("4003", "11"))
        client.transport.write(speed(6))
        yield client.wait_replies(2)
        self.assertEqual(client.replies[1].result_code, "00")


class ConnectionTests(TestCase):
    @defer.inlineCallbacks
    def test_half_a_telegram_then_silence_is_refused_and_closed_without_blocking_others(self):
        """Half a telegram then silence is NAKed, kept aside and closed after idle_timeout; others go on."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, idle_timeout=0.3)
        stuck = yield connect(self, service)
        other = yield connect(self, service)
        stuck.transport.write(schedule(1)[:100])
        other.transport.write(speed(1))
        yield other.wait_replies(1)
        yield stuck.closed
        self.assertEqual([(r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in stuck.replies],
                         [("4000", 1, "11")])
        other.transport.write(speed(2))
        yield other.wait_replies(2)
        self.assertEqual([r.result_code for r in other.replies], ["00", "00"])
        yield wait_for(lambda: len(rejected(dsn)) == 1)
        self.assertEqual(bytes(rejected(dsn)[0][4]), schedule(1)[:100])
        self.assertIn("idle", rejected(dsn)[0][1])

    @defer.inlineCallbacks
    def test_a_thousand_connections_opened_and_dropped_leave_nothing_behind(self):
        """A thousand connections opened and dropped leave no state behind; their half telegrams are kept."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, max_connections=1100)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port_of(service.settings.listen))
        clients = []
        self.addCleanup(lambda: [c.transport.abortConnection() for c in clients if c.transport.connected])
        for _ in range(20):  # in waves of 50: the listen backlog is the kernel's business, not ours
            clients += yield defer.gatherResults([endpoints.connectProtocol(endpoint, protocol.Protocol())
                                                  for _ in range(50)])
            yield wait_for(lambda: len(service.factory.connections) == len(clients), what="connections accepted")
        for index, client in enumerate(clients):
            if index % 10 == 0:
                client.transport.write(wpd(index + 1)[:50])  # a tenth leave half a telegram
            client.transport.abortConnection() if index % 2 else client.transport.loseConnection()
        yield wait_for(lambda: not service.factory.connections and not service.links.connected,
                       what="every connection gone")
        self.assertEqual(service.links.peers["127.0.0.1"].connections, 0)
        # The half telegrams were kept for diagnosis.
        yield wait_for(lambda: len(rejected(dsn)) == 100, what="100 half telegrams kept")
        client = yield connect(self, service)
        client.transport.write(speed(5))
        yield client.wait_replies(1)
        self.assertEqual(client.replies[0].result_code, "00")

    @defer.inlineCallbacks
    def test_connections_above_max_connections_are_closed_at_once(self):
        """A connection above max_connections is closed at once and counted; the others are served."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, max_connections=2)
        first = yield connect(self, service)
        second = yield connect(self, service)
        yield wait_for(lambda: len(service.factory.connections) == 2)
        third = yield connect(self, service)
        yield third.closed
        first.transport.write(speed(1))
        second.transport.write(speed(2))
        yield first.wait_replies(1)
        yield second.wait_replies(1)
        self.assertIn("ccl_mes_connections_refused_total 1", service.registry.render())

    @defer.inlineCallbacks
    def test_reply_ack_off_stores_but_sends_nothing(self):
        """With reply_ack off, telegrams are stored and garbage kept aside, but nothing is sent back."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, reply_ack=False)
        client = yield connect(self, service)
        client.transport.write(schedule(1) + b"garbage!" + speed(2))
        yield wait_for(lambda: query(dsn, "SELECT count(*) FROM tc_4003_speed") == [(1,)])
        yield wait_for(lambda: len(rejected(dsn)) == 1)
        self.assertEqual(client.raw, b"")
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4000_schedule"), [(1,)])
