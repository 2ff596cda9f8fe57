"""MES in, 고기원 out: the MES client -> ccl-mes (a real twistd process) -> the 고기원 simulator."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from ccl.adapters.gokiwon.service import GokiwonSettings
from ccl.adapters.gokiwon.simulator import GokiwonSimulator
from ccl.adapters.storage.localdb import free_port
from tests.support.cluster import private_cluster
from tests.support.database import fresh_database, query
from tests.test_mes_outages import database_recovered
from tests.support.mes import connect_when_up, spawn_ccl_mes, LAYOUTS, connect, cut, schedule, speed, start_service, wait_for, wpd

ROOT = Path(__file__).resolve().parent.parent
CHANNEL_OF = {"4000": "schedule", "4002": "wpd", "4003": "speed"}


def production_run(first: int, last: int) -> list[bytes]:
    """A mixed stream: per sequence number one of schedule, WPD, cut, speed (cuts are never forwarded)."""
    makers = [lambda n: schedule(n, coil=f"H{n:06d}"), lambda n: wpd(n, coil=f"H{n:06d}"),
              lambda n: cut(n, coil=f"H{n:06d}"), lambda n: speed(n, mpm=n % 500)]
    return [makers[n % 4](n) for n in range(first, last + 1)]


def expected_by_channel(telegrams: list[bytes]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {"schedule": [], "wpd": [], "speed": []}
    for raw in telegrams:
        channel = CHANNEL_OF.get(raw[:4].decode())
        if channel:
            out[channel].append(raw)
    return out


def first_arrivals(sim: GokiwonSimulator, channel: str) -> list[bytes]:
    seen, order = set(), []
    for item in sim.received:
        if item.channel == channel and item.raw not in seen:
            seen.add(item.raw)
            order.append(item.raw)
    return order


@defer.inlineCallbacks
def forwarding_to_simulator(testcase, dsn: str):
    """An in-process MES service on ``dsn`` forwarding to a 고기원 simulator, all connected.
    The safety-net poll is an hour away: only commits and the live path move entries."""
    sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0)
    ports = yield sim.listen({"schedule": 0, "wpd": 0, "speed": 0})
    testcase.addCleanup(sim.shutdown)
    settings = GokiwonSettings(host="127.0.0.1", ports=ports, ack_listen="tcp:0:interface=127.0.0.1",
                               retry_initial=0.1, retry_max=0.5, poll_interval=3600)
    mes = yield start_service(testcase, dsn, gokiwon=settings)
    forwarding = mes.forwarding
    port = yield forwarding.ack_listener.listening
    sim.start_acks(("127.0.0.1", port.getHost().port))
    yield wait_for(lambda: all(f.connected for f in forwarding.forwarders.values()), what="connected")
    return sim, mes, forwarding



class EndToEndProcessTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.dsn = fresh_database(self)
        self.var = Path(tempfile.mkdtemp(prefix="ccl-e2e-"))
        self.mes_port, self.status_port, self.ack_port = free_port(), free_port(), free_port()
        self.sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0.5, seed=3)
        self.ports = yield self.sim.listen({"schedule": 0, "wpd": 0, "speed": 0})
        self.addCleanup(self.sim.shutdown)
        self.sim.start_acks(("127.0.0.1", self.ack_port))

    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=self.dsn, CCL_PATHS_VAR=str(self.var),
                   CCL_PATHS_LOGS=str(self.var / "logs"),
                   CCL_MES_LISTEN=f"tcp:{self.mes_port}:interface=127.0.0.1",
                   CCL_MES_STATUS_LISTEN=f"tcp:{self.status_port}:interface=127.0.0.1",
                   CCL_MES_ACK_LISTEN=f"tcp:{self.ack_port}:interface=127.0.0.1",
                   CCL_GOKIWON_HOST="127.0.0.1", CCL_GOKIWON_RETRY_INITIAL="0.1", CCL_GOKIWON_RETRY_MAX="0.5",
                   CCL_GOKIWON_ALIVE_INTERVAL="0.5",
                   **{f"CCL_GOKIWON_{channel.upper()}_PORT": str(port) for channel, port in self.ports.items()})
        return env

    def spawn(self):
        return spawn_ccl_mes(self, self.environment(), str(self.var))

    def connect_when_up(self, output):
        return connect_when_up(self, self.mes_port, output)

    @defer.inlineCallbacks
    def test_every_forwarded_telegram_arrives_once_in_order_byte_identical_and_4001_never(self):
        """Via the real ccl-mes, each forwarded telegram reaches 고기원 once, in order, byte-identical; 4001 never."""
        process, output = self.spawn()
        client = yield self.connect_when_up(output)
        telegrams = production_run(1, 400)
        for start in range(0, len(telegrams), 25):
            client.transport.write(b"".join(telegrams[start:start + 25]))
            yield task.deferLater(reactor, 0.005, lambda: None)
        yield client.wait_replies(400)
        expected = expected_by_channel(telegrams)
        yield wait_for(lambda: all(len([r for r in self.sim.received if r.channel == ch]) >= len(raws)
                                   for ch, raws in expected.items()), timeout=60, what="everything forwarded")
        yield wait_for(lambda: query(self.dsn, "SELECT count(*) FROM forward_outbox WHERE state <> 'delivered'")
                       == [(0,)], timeout=30, what="outbox all delivered")
        for channel, raws in expected.items():
            self.assertEqual([r.raw for r in self.sim.received if r.channel == channel], raws)
        self.assertFalse(any(r.duplicate for r in self.sim.received))
        self.assertNotIn("4001", {r.tc_code for r in self.sim.received})
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM tc_4001_cut"), [(100,)])
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM forward_outbox WHERE tc_code = '4001'"), [(0,)])

        agent = Agent(reactor)
        response = yield agent.request(b"GET", f"http://127.0.0.1:{self.status_port}/health".encode())
        health = json.loads((yield readBody(response)))
        for channel in expected:
            block = health["gokiwon"]["channels"][channel]
            self.assertEqual((block["connected"], block["delivered"], block["backlog"]),
                             (True, len(expected[channel]), 0))
        response = yield agent.request(b"GET", f"http://127.0.0.1:{self.status_port}/metrics".encode())
        self.assertIn(b'ccl_gokiwon_delivered_total{channel="speed"} 100', (yield readBody(response)))

    @defer.inlineCallbacks
    def test_sigkill_mid_stream_and_restart_loses_nothing(self):
        """ccl-mes killed with SIGKILL mid-stream and restarted forwards every ACKed telegram, none lost."""
        process, output = self.spawn()
        client = yield self.connect_when_up(output)
        telegrams = production_run(1, 3000)
        sent = 0

        def pump():
            nonlocal sent
            if sent < len(telegrams) and not client.closed.called:
                client.transport.write(b"".join(telegrams[sent:sent + 20]))
                sent += 20

        pumping = task.LoopingCall(pump)
        pumping.start(0.004)
        yield wait_for(lambda: len(self.sim.received) >= 200, timeout=60, what="forwarding under way")
        os.kill(process.pid, signal.SIGKILL)
        pumping.stop()
        yield output.ended
        yield client.closed
        acked = {r.acked_sequence_no for r in client.replies if r.result_code == "00"}

        process, output = self.spawn()
        client = yield self.connect_when_up(output)
        # The MES sends again everything it had no ACK for.
        unacked = [raw for n, raw in enumerate(telegrams[:sent], start=1) if n not in acked]
        client.transport.write(b"".join(unacked))
        rest = telegrams[sent:]
        client.transport.write(b"".join(rest))
        yield client.wait_replies(len(unacked) + len(rest), timeout=60)
        expected = expected_by_channel(telegrams)
        yield wait_for(lambda: all(len(first_arrivals(self.sim, ch)) >= len(raws) for ch, raws in expected.items()),
                       timeout=90, what="everything forwarded after the restart")
        for channel, raws in expected.items():
            # At-least-once across the crash; each telegram's first arrival is in the MES order.
            self.assertEqual(first_arrivals(self.sim, channel), raws)
        self.assertNotIn("4001", {r.tc_code for r in self.sim.received})
        yield wait_for(lambda: query(self.dsn, "SELECT count(*) FROM forward_outbox WHERE state <> 'delivered'")
                       == [(0,)], timeout=30, what="outbox all delivered")
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM forward_outbox"),
                         [(sum(len(r) for r in expected.values()),)])


class WakeUpTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_the_writer_wakes_forwarding_after_each_commit(self):
        """Each commit of the writer wakes forwarding at once, without waiting for the safety-net poll."""
        # With the safety-net poll an hour away, only the pipeline's wake-up after a commit can move these.
        dsn = fresh_database(self)
        sim, mes, forwarding = yield forwarding_to_simulator(self, dsn)
        yield task.deferLater(reactor, 0.2, lambda: None)  # the first poll at start-up is behind us
        client = yield connect(self, mes)
        telegrams = production_run(1, 40)
        client.transport.write(b"".join(telegrams))
        yield client.wait_replies(40)
        expected = expected_by_channel(telegrams)
        yield wait_for(lambda: all([r.raw for r in sim.received if r.channel == ch] == raws
                                   for ch, raws in expected.items()), what="forwarded on wake-up")
        yield wait_for(lambda: query(dsn, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'")
                       == [(30,)], what="delivered")
        self.assertEqual(mes.health()["gokiwon"]["channels"]["wpd"]["delivered"], 10)


class LiveForwardingTests(TestCase):
    """Once caught up, telegrams go to 고기원 from the journal, before PostgreSQL has them."""

    timeout = 120

    @defer.inlineCallbacks
    def test_forwarded_while_postgres_is_down_and_recorded_once_it_is_back(self):
        """Telegrams are forwarded while PostgreSQL is down, and recorded as delivered once it is back."""
        cluster, dsn = private_cluster(self)
        sim, mes, forwarding = yield forwarding_to_simulator(self, dsn)
        client = yield connect(self, mes)
        client.transport.write(b"".join(production_run(1, 20)))
        yield client.wait_replies(20)
        yield wait_for(lambda: all(f.live for f in forwarding.forwarders.values()), what="caught up, live")

        cluster.stop()
        client.transport.write(b"".join(production_run(21, 60)))
        yield client.wait_replies(60)  # ACKed: safe in the journal
        expected = expected_by_channel(production_run(1, 60))
        yield wait_for(lambda: all(first_arrivals(sim, ch) == raws for ch, raws in expected.items()),
                       what="forwarded while PostgreSQL is down")
        self.assertLess(mes.writer.applied_upto, mes.journal.last_durable)  # not in PostgreSQL yet

        cluster.start(fast=True)
        yield wait_for(lambda: query(dsn, "SELECT state, count(*) FROM forward_outbox GROUP BY state")
                       == [("delivered", 45)], timeout=60, what="recorded as delivered")
        self.assertEqual([r for r in sim.received if r.duplicate], [])
        self.assertEqual(query(dsn, "SELECT min(attempts), max(attempts) FROM forward_outbox"), [(1, 1)])

        # The MES sends one again (its ACK got lost): stored once, so it gets no outbox row;
        # the copy forwarded live is the only extra, and nothing stays held for it.
        again = production_run(21, 21)[0]  # a schedule
        client.transport.write(again)
        yield client.wait_replies(61)
        yield wait_for(lambda: sum(1 for r in sim.received if r.raw == again) == 2, what="the copy")
        yield wait_for(lambda: mes.writer.applied_upto == mes.journal.last_durable, what="committed")
        self.assertEqual(query(dsn, "SELECT state, count(*) FROM forward_outbox GROUP BY state"), [("delivered", 45)])
        yield wait_for(lambda: all(f.queued + f.in_flight == 0 for f in forwarding.forwarders.values()),
                       what="nothing held")
        yield database_recovered(mes.db, mes.settings.pool_size)
        # txpostgres logs what the stopped server did to its connections mid-query.
        self.flushLoggedErrors(psycopg2.OperationalError, psycopg2.InterfaceError)
