"""Forwarding service against real PostgreSQL, real loopback sockets and the 고기원 simulator.

Outbox rows are inserted with SQL here (the MES writer does it in production); the end-to-end
tests with ccl-mes are in tests/test_gokiwon_end_to_end.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from ccl.adapters.gokiwon.sender import RetryClock
from ccl.adapters.gokiwon.service import ForwardingService, GokiwonSettings, channel_forwarders
from ccl.adapters.gokiwon.store import PgOutboxStore
from ccl.adapters.gokiwon.simulator import GokiwonSimulator
from ccl.adapters.storage.journal import Journal
from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.application.mes_pipeline import MesPipeline
from ccl.application.store_telegrams import TelegramWriter
from ccl.domain.metrics import Registry, parse_text
from ccl.domain.telegrams import PLANT_TZ, encode, encode_ack, encode_alive, load_layouts
from tests.support.cluster import private_cluster
from tests.support.database import fresh_database, query

LAYOUTS = load_layouts()
TC = {"schedule": "4000", "wpd": "4002", "speed": "4003"}
SOURCE = {"4000": "tc_4000_schedule", "4002": "tc_4002_wpd", "4003": "tc_4003_speed"}


def telegram(tc_code: str, sequence_no: int, value: int = 0) -> bytes:
    body = {"4000": {"coil_number": f"H{value:06d}", "customer_name": "이알텍㈜", "thickness": 0.372},
            "4001": {"coil_number": f"H{value:06d}", "cut_mode": 1, "winding_length": 1200},
            "4002": {"coil_number": f"H{value:06d}"}, "4003": {"line_speed": value % 1000}}[tc_code]
    return encode(LAYOUTS, tc_code, body, line_code="CCL1", sequence_no=sequence_no,
                  sent_at=datetime.datetime(2026, 11, 27, 9, 0, 0, tzinfo=PLANT_TZ))


def insert(dsn: str, channel: str, sequence_numbers, start_value: int = 0) -> list[tuple[int, bytes]]:
    """Outbox rows as the MES writer makes them; returns [(id, raw)] in id order."""
    tc = TC[channel]
    rows = []
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            for i, seq in enumerate(sequence_numbers):
                raw = telegram(tc, seq, start_value + i)
                cursor.execute("INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw)"
                               " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                               (channel, SOURCE[tc], i + 1, tc, seq, raw))
                rows.append((cursor.fetchone()[0], raw))
    finally:
        connection.close()
    return rows


def states(dsn: str) -> dict[str, int]:
    return dict(query(dsn, "SELECT state, count(*) FROM forward_outbox GROUP BY state"))


@defer.inlineCallbacks
def wait_until(predicate, what: str, timeout: float = 20.0, step: float = 0.05):
    """Poll until predicate() is true; a bound against hanging, not a speed check."""
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError(f"gave up waiting for {what}")
        yield task.deferLater(reactor, step, lambda: None)
        waited += step


class Harness:
    """A forwarding service on a database, the simulator as its 고기원."""

    def __init__(self, testcase: TestCase, dsn: str):
        self.testcase = testcase
        self.dsn = dsn
        self.sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0.2, seed=1)
        self.ports: dict[str, int] = {}
        self.service: ForwardingService | None = None
        self.pipeline: MesPipeline | None = None
        self.db: Database | None = None
        self.ack_port = 0
        self.sim_running = False

    @defer.inlineCallbacks
    def start_sim(self):
        self.ports = yield self.sim.listen({"schedule": 0, "wpd": 0, "speed": 0})
        self.sim_running = True
        self.testcase.addCleanup(self.sim.shutdown)

    @defer.inlineCallbacks
    def start_service(self, **overrides):
        options = dict(host="127.0.0.1", ports=self.ports, ack_listen=f"tcp:{self.ack_port}:interface=127.0.0.1",
                       retry_initial=0.1, retry_max=0.4, poll_interval=0.3, alive_interval=0.2)
        options.update(overrides)
        self.db = Database(reactor, self.dsn, 2)
        yield self.db.start()
        settings = GokiwonSettings(**options)
        outbox = PgOutboxStore(reactor, self.db)
        registry = Registry()
        # The MES pipeline around the forwarders, its journal and writer never started: the
        # forwarders only ever read the outbox (what the MES writer would commit is inserted here).
        journal = Journal(reactor, Path(self.testcase.mktemp()).absolute())
        writer = TelegramWriter(PostgresProcessStore(reactor, self.dsn), LAYOUTS, reactor)
        self.pipeline = MesPipeline(journal, writer, channel_forwarders(reactor, outbox, settings, registry), LAYOUTS)
        self.service = ForwardingService(reactor, self.db, outbox, self.pipeline, LAYOUTS, settings, registry)
        self.service.startService()
        service, db = self.service, self.db
        self.testcase.addCleanup(db.close)
        self.testcase.addCleanup(lambda: service.stopService() if service.running else None)
        port = yield self.service.ack_listener.listening
        self.ack_port = port.getHost().port
        if self.sim_running:
            self.sim.start_acks(("127.0.0.1", self.ack_port))

    @defer.inlineCallbacks
    def stop_service(self):
        yield self.service.stopService()
        self.db.close()

    def received(self, channel: str, answered_only: bool = False) -> list[bytes]:
        return [r.raw for r in self.sim.received if r.channel == channel]


class ForwardingTests(TestCase):
    timeout = 45

    @defer.inlineCallbacks
    def setUp(self):
        self.dsn = fresh_database(self)
        self.h = Harness(self, self.dsn)
        yield self.h.start_sim()

    @defer.inlineCallbacks
    def test_every_entry_arrives_once_in_order_byte_identical(self):
        """Every outbox entry reaches 고기원 once, in order, byte-identical, each recorded sent and delivered."""
        yield self.h.start_service()
        rows = {ch: insert(self.dsn, ch, range(1, 61), start_value=100 * n) for n, ch in enumerate(TC)}
        self.h.pipeline.wake(TC)
        yield wait_until(lambda: states(self.dsn) == {"delivered": 180}, "all delivered")
        for channel, expected in rows.items():
            self.assertEqual(self.h.received(channel), [raw for _, raw in expected])
        self.assertFalse(any(r.duplicate for r in self.h.sim.received))
        self.assertEqual(query(self.dsn, "SELECT DISTINCT attempts FROM forward_outbox"), [(1,)])
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM forward_outbox WHERE first_sent_at IS NULL"
                                         " OR delivered_at IS NULL"), [(0,)])
        # Alive telegrams go out on each connection with a running count.
        yield wait_until(lambda: all(self.h.sim.alives.get(ch, 0) >= 2 for ch in TC), "alives")
        yield wait_until(lambda: len(query(self.dsn, "SELECT 1 FROM link_status WHERE link LIKE 'gokiwon-%%'"
                                                      " AND connected")) == 4, "link_status rows")
        # Rewritten every poll_interval: the figures catch up with the deliveries.
        yield wait_until(lambda: query(self.dsn, "SELECT details->>'delivered', details->>'backlog' FROM link_status"
                                                 " WHERE link = 'gokiwon-speed'") == [("60", "0")], "link_status figures")

    @defer.inlineCallbacks
    def test_gokiwon_down_then_up_everything_queued_arrives_in_order(self):
        """While 고기원 is down entries wait; once it is back every queued entry arrives, in order."""
        yield self.h.start_service()
        first = insert(self.dsn, "speed", range(1, 11))
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 10}, "first ten")
        yield self.h.sim.stop()
        yield wait_until(lambda: not self.h.service.forwarders["speed"].connected, "disconnect seen")
        queued = insert(self.dsn, "speed", range(11, 211), start_value=11)
        self.h.pipeline.wake(["speed"])
        yield task.deferLater(reactor, 0.8, lambda: None)  # several failed reconnects
        self.assertEqual(states(self.dsn), {"delivered": 10, "pending": 200})
        health = self.h.service.health()["channels"]["speed"]
        self.assertFalse(health["connected"])
        self.assertEqual(health["backlog"], 200)
        self.assertGreater(health["oldest_pending_age_s"], 0)
        yield self.h.sim.listen(self.h.ports)
        more = insert(self.dsn, "speed", range(211, 221), start_value=211)  # new ones queue behind
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 220}, "backlog drained")
        self.assertEqual(self.h.received("speed"), [raw for _, raw in first + queued + more])

    @defer.inlineCallbacks
    def test_gokiwon_coming_back_cuts_the_reconnect_back_off_short(self):
        """고기원 connecting to the ACK port cuts the reconnect back-off short."""
        yield self.h.sim.stop()
        self.h.sim_running = False
        # Retries ten minutes apart: within this test only "고기원 is back" can connect them.
        yield self.h.start_service(retry_initial=600, retry_max=600)
        clocks = self.h.service._retry_clocks
        yield wait_until(lambda: all(clock.waiting for clock in clocks.values()), "first attempts failed")
        yield self.h.sim.listen(self.h.ports)
        self.h.sim.start_acks(("127.0.0.1", self.h.ack_port))  # 고기원 connects to our ACK port
        yield wait_until(lambda: all(f.connected for f in self.h.service.forwarders.values()), "reconnected")
        rows = insert(self.dsn, "wpd", range(1, 6))
        self.h.pipeline.wake(["wpd"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 5}, "delivered")
        self.assertEqual(self.h.received("wpd"), [raw for _, raw in rows])

    def test_retry_clock_cuts_a_wait_short(self):
        """RetryClock.try_now runs a waiting retry at once, and says whether one waited."""
        clock = task.Clock()
        retry = RetryClock(clock)
        calls = []
        self.assertFalse(retry.try_now())  # nothing waits
        retry.callLater(600, calls.append, "retried")
        self.assertTrue(retry.waiting)
        self.assertTrue(retry.try_now())
        clock.advance(0)
        self.assertEqual(calls, ["retried"])
        self.assertFalse(retry.waiting)

    @defer.inlineCallbacks
    def test_acks_withheld_resends_then_stop_once_acked(self):
        """Entries without an ACK are resent after ack_timeout until ACKed, then delivered."""
        yield self.h.start_service(ack_timeout=0.2)
        self.h.sim.acking = False
        rows = insert(self.dsn, "wpd", [7, 8])
        self.h.pipeline.wake(["wpd"])
        yield wait_until(lambda: len(self.h.received("wpd")) >= 6, "resends")
        self.assertEqual(set(self.h.received("wpd")), {raw for _, raw in rows})
        self.assertTrue(all(r.duplicate for r in self.h.sim.received[2:]))
        self.assertEqual(states(self.dsn), {"pending": 2})
        self.h.sim.acking = True
        yield wait_until(lambda: states(self.dsn) == {"delivered": 2}, "delivered after ACK")
        count = len(self.h.received("wpd"))
        yield task.deferLater(reactor, 0.8, lambda: None)  # four ACK timeouts
        self.assertEqual(len(self.h.received("wpd")), count)
        self.assertGreaterEqual(self.h.service.forwarders["wpd"].stats.resent, 4)
        self.assertEqual(query(self.dsn, "SELECT min(attempts) >= 3 FROM forward_outbox"), [(True,)])
        metrics = {(n, l.get("channel")): v for n, l, v in parse_text(self.h.service.registry.render())}
        self.assertGreaterEqual(metrics[("ccl_gokiwon_resent_total", "wpd")], 4)

    @defer.inlineCallbacks
    def test_nak_moves_entry_aside_and_channel_goes_on(self):
        """A NAKed entry is moved aside as refused and the channel goes on."""
        yield self.h.start_service(window=1)
        self.h.sim.nak_rate = 1.0
        refused = insert(self.dsn, "schedule", [1])
        self.h.pipeline.wake(["schedule"])
        yield wait_until(lambda: states(self.dsn) == {"refused": 1}, "refusal recorded")
        self.h.sim.nak_rate = 0.0
        rest = insert(self.dsn, "schedule", [2, 3, 4], start_value=2)
        self.h.pipeline.wake(["schedule"])
        yield wait_until(lambda: states(self.dsn) == {"refused": 1, "delivered": 3}, "the rest delivered")
        self.assertEqual(query(self.dsn, "SELECT state, refused_code, refused_at IS NOT NULL FROM forward_outbox"
                                         " WHERE id = %s", (refused[0][0],)), [("refused", "12", True)])
        self.assertEqual(self.h.received("schedule"), [raw for _, raw in refused + rest])
        self.assertEqual(self.h.service.health()["channels"]["schedule"]["refused"], 1)

    @defer.inlineCallbacks
    def test_restart_of_the_forwarder_resumes_with_nothing_lost(self):
        """A forwarder restarted with entries in flight resumes and delivers all of them."""
        yield self.h.start_service(window=4)
        self.h.sim.acking = False
        rows = insert(self.dsn, "speed", range(1, 31))
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: len(self.h.received("speed")) >= 4, "window in flight")
        yield self.h.stop_service()
        self.assertEqual(states(self.dsn), {"pending": 30})
        self.h.sim.acking = True
        yield self.h.start_service(window=4)
        yield wait_until(lambda: states(self.dsn) == {"delivered": 30}, "all delivered after restart")
        got = self.h.received("speed")
        # The unanswered window comes again (at-least-once), then everything in order.
        self.assertEqual(got[4:], [raw for _, raw in rows])
        self.assertEqual(got[:4], [raw for _, raw in rows[:4]])

    @defer.inlineCallbacks
    def test_partner_hanging_up_and_losing_telegrams_loses_nothing(self):
        """A partner that hangs up and loses telegrams loses nothing: reconnects and resends make up for it."""
        # 고기원 hangs up after every 7 telegrams (what was behind them in the same read is
        # lost) and loses one in five outright: reconnects and ACK timeouts make up for it all.
        yield self.h.start_service(ack_timeout=0.3)
        self.h.sim.disconnect_every = 7
        self.h.sim.drop_rate = 0.2
        rows = insert(self.dsn, "speed", range(1, 61))
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 60}, "all delivered", timeout=40)
        taken = [r for r in self.h.sim.received if r.channel == "speed" and r.answer == "ack"]
        self.assertEqual({r.raw for r in taken}, {raw for _, raw in rows})
        self.assertTrue(any(r.answer == "dropped" for r in self.h.sim.received))
        self.assertGreater(self.h.service.forwarders["speed"].stats.resent, 0)

    @defer.inlineCallbacks
    def test_require_ack_off_counts_written_entries_delivered(self):
        """With require_ack off, entries written to the socket count as delivered."""
        yield self.h.start_service(require_ack=False)
        self.h.sim.acking = False
        rows = insert(self.dsn, "wpd", range(1, 21))
        self.h.pipeline.wake(["wpd"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 20}, "delivered without ACKs")
        self.assertEqual(self.h.received("wpd"), [raw for _, raw in rows])

    @defer.inlineCallbacks
    def test_ack_link_garbage_unknown_ack_and_alive(self):
        """On the ACK link garbage and foreign telegrams are kept aside, unknown ACKs ignored, alives counted."""
        yield self.h.start_service()
        sent_at = datetime.datetime(2026, 11, 27, 9, 0, 0, tzinfo=PLANT_TZ)
        unknown = encode_ack(LAYOUTS, acked_tc_code="4003", acked_sequence_no=4242, line_code="GKW1",
                             sequence_no=1, sent_at=sent_at)
        alive = encode_alive(LAYOUTS, alive_count=77, line_code="GKW1", sequence_no=2, sent_at=sent_at)
        cut = telegram("4001", 5)  # a process telegram does not belong on the ACK link
        peer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.h.ack_port), Protocol())
        peer.transport.write(b"JUNKJUNK" * 10 + unknown + alive + cut)
        yield wait_until(lambda: self.h.service.peer_alive_count == 77, "alive seen")
        yield wait_until(lambda: len(query(self.dsn, "SELECT 1 FROM rejected_telegrams")) == 2, "rejections kept")
        # (Written concurrently: ordered here by result code, not by arrival.)
        rejected = query(self.dsn, "SELECT listener, result_code, tc_code, raw FROM rejected_telegrams"
                                   " ORDER BY result_code")
        self.assertEqual([(r[0], r[1]) for r in rejected], [("gokiwon-ack", "10"), ("gokiwon-ack", "13")])
        self.assertEqual(bytes(rejected[0][3]), cut)
        self.assertEqual(rejected[0][2], "4001")
        self.assertEqual(bytes(rejected[1][3]), b"JUNKJUNK" * 10)
        metrics = {n: v for n, _, v in parse_text(self.h.service.registry.render())}
        self.assertEqual(metrics["ccl_gokiwon_ack_unknown_total"], 1)
        self.assertEqual(metrics["ccl_gokiwon_ack_rejected_total"], 2)
        peer.transport.loseConnection()
        # The link still works for real ACKs.
        insert(self.dsn, "speed", [1])
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 1}, "delivered")

    @defer.inlineCallbacks
    def test_health_and_metrics_per_channel(self):
        """Health and metrics give each channel's connection, delivered, backlog, refused and last ACK."""
        yield self.h.start_service()
        yield wait_until(lambda: all(f.connected for f in self.h.service.forwarders.values()), "connected")
        insert(self.dsn, "speed", [1, 2])
        self.h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(self.dsn) == {"delivered": 2}, "delivered")
        health = self.h.service.health()
        self.assertEqual(health["status"], "ok")
        speed = health["channels"]["speed"]
        self.assertEqual((speed["connected"], speed["delivered"], speed["backlog"], speed["refused"]), (True, 2, 0, 0))
        self.assertIsNotNone(speed["last_ack_at"])
        samples = {(n, l.get("channel")): v for n, l, v in parse_text(self.h.service.registry.render())}
        for channel in TC:
            self.assertEqual(samples[("ccl_gokiwon_connected", channel)], 1)
        self.assertEqual(samples[("ccl_gokiwon_delivered_total", "speed")], 2)
        self.assertEqual(samples[("ccl_gokiwon_backlog", "speed")], 0)


class DatabaseOutageTests(TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_postgres_restart_loses_nothing(self):
        """A PostgreSQL restart during forwarding loses nothing and delivers nothing twice."""
        cluster, dsn = private_cluster(self)
        h = Harness(self, dsn)
        yield h.start_sim()
        yield h.start_service()
        rows = insert(dsn, "speed", range(1, 21))
        h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(dsn) == {"delivered": 20}, "first batch")
        cluster.stop()
        # While PostgreSQL is down nothing new can be read, and the ACKs of what is in
        # flight cannot be recorded; both must catch up once it is back.
        yield task.deferLater(reactor, 0.5, lambda: None)
        cluster.start(fast=True)
        more = insert(dsn, "speed", range(21, 41), start_value=21)
        h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(dsn) == {"delivered": 40}, "after the restart", timeout=40)
        got = h.received("speed")
        self.assertEqual(got, [raw for _, raw in rows + more])
        self.flushLoggedErrors(psycopg2.OperationalError)


class SimulateCommandTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_ccl_simulate_gokiwon_records_and_acks(self):
        """ccl simulate gokiwon receives, ACKs and records what is forwarded to it."""
        import json
        import os
        import sys
        from pathlib import Path

        from twisted.internet import utils

        from ccl.adapters.storage.localdb import free_port

        dsn = fresh_database(self)
        h = Harness(self, dsn)
        h.ports = {"schedule": free_port(), "wpd": free_port(), "speed": free_port()}
        h.ack_port = free_port()
        record = Path(self.mktemp())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        ran = utils.getProcessOutputAndValue(sys.executable, (
            "-m", "ccl", "simulate", "gokiwon", "--schedule-port", str(h.ports["schedule"]),
            "--wpd-port", str(h.ports["wpd"]), "--speed-port", str(h.ports["speed"]),
            "--ack-to", f"127.0.0.1:{h.ack_port}", "--record", str(record), "--count", "4"), env=env)
        yield h.start_service()
        rows = insert(dsn, "speed", [1, 2, 3]) + insert(dsn, "schedule", [4])
        h.pipeline.wake(TC)
        yield wait_until(lambda: states(dsn) == {"delivered": 4}, "ACKed by the command", timeout=30)
        out, err, code = yield ran
        self.assertEqual(code, 0, (out + err).decode())
        self.assertIn("고기원 simulator listening", out.decode())
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        self.assertEqual([bytes.fromhex(line["raw_hex"]) for line in lines if line["channel"] == "speed"],
                         [raw for _, raw in rows[:3]])
        self.assertEqual({line["answer"] for line in lines}, {"ack"})
