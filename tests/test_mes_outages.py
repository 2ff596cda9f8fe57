"""Nothing ACKed is ever lost: PostgreSQL going away, and the service killed with SIGKILL."""

import json
import os
import signal
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from ccl.adapters.storage.localdb import free_port
from ccl.domain.metrics import parse_text
from tests.support.cluster import private_cluster
from tests.support.database import fresh_database, query
from tests.support.mes import connect_when_up, spawn_ccl_mes, connect, schedule, speed, start_service, wait_for

ROOT = Path(__file__).resolve().parent.parent


def speeds(dsn):
    return [row[0] for row in query(dsn, "SELECT sequence_no FROM tc_4003_speed ORDER BY id")]


class DatabaseOutageTests(TestCase):
    @defer.inlineCallbacks
    def test_postgres_stopped_mid_stream_acks_continue_then_everything_arrives_once_in_order(self):
        """PostgreSQL stopped mid-stream: ACKs go on, health says degraded; then all arrives once, in order."""
        cluster, dsn = private_cluster(self)
        service = yield start_service(self, dsn)
        client = yield connect(self, service)
        client.transport.write(b"".join(speed(n) for n in range(1, 51)))
        yield client.wait_replies(50)
        yield wait_for(lambda: len(speeds(dsn)) == 50)

        cluster.stop()
        client.transport.write(b"".join(speed(n) for n in range(51, 151)) + schedule(151))
        yield client.wait_replies(101)  # the MES link does not notice the outage
        self.assertEqual({r.result_code for r in client.replies}, {"00"})
        yield wait_for(lambda: not service.writer.database_ok, what="writer noticing the outage")
        health = service.health()
        self.assertEqual((health["status"], health["database"]), ("degraded", "unavailable"))
        self.assertEqual(health["journal"]["backlog"], 101)

        cluster.start(fast=True)
        yield wait_for(lambda: service.writer.backlog == 0 and service.writer.database_ok, timeout=60,
                       what="catching up")
        self.assertEqual(speeds(dsn), list(range(1, 151)))
        self.assertEqual(query(dsn, "SELECT sequence_no FROM tc_4000_schedule"), [(151,)])
        self.assertEqual(query(dsn, "SELECT count(*) FROM forward_outbox"), [(151,)])
        self.assertEqual(query(dsn, "SELECT applied_upto FROM journal_progress"), [(151,)])
        self.assertEqual(service.health()["status"], "ok")
        failures = [s for s in parse_text(service.registry.render()) if s[0] == "ccl_mes_pg_writes_total"]
        self.assertTrue(any(labels == {"result": "failed"} and value > 0 for _, labels, value in failures))
        # The link-status connections (txpostgres) reconnect on their own; let them finish
        # so that no reconnection timer outlives the test.
        yield database_recovered(service.db, service.settings.pool_size)
        self.flushLoggedErrors(psycopg2.OperationalError)


@defer.inlineCallbacks
def database_recovered(db, size):
    for _ in range(200):
        try:
            yield defer.gatherResults([db.runQuery("SELECT 1") for _ in range(size)], consumeErrors=True)
            return
        except defer.FirstError:
            yield task.deferLater(reactor, 0.1, lambda: None)



class ServiceProcessTests(TestCase):
    """``twistd -n ccl-mes`` as a real process, as the plant runs it."""

    def environment(self, dsn, var, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_PATHS_VAR=str(var),
                   CCL_PATHS_LOGS=str(var / "logs"), CCL_MES_LISTEN=f"tcp:{self.port}:interface=127.0.0.1",
                   CCL_MES_STATUS_LISTEN=f"tcp:{self.status_port}:interface=127.0.0.1",
                   # Forwarding to 고기원 has its own process tests; here it would use production ports.
                   CCL_GOKIWON_ENABLED="false")
        env.update(extra)
        return env

    def spawn(self, env):
        return spawn_ccl_mes(self, env, str(env["CCL_PATHS_VAR"]))

    def connect_when_up(self, output):
        return connect_when_up(self, self.port, output)

    @defer.inlineCallbacks
    def test_killed_with_sigkill_after_acks_and_restarted_loses_and_doubles_nothing(self):
        """ccl-mes killed with SIGKILL mid-stream and restarted loses no ACKed telegram and stores none twice."""
        dsn = fresh_database(self)
        var = Path(self.mktemp()).absolute()
        var.mkdir(parents=True)
        self.port, self.status_port = free_port(), free_port()
        env = self.environment(dsn, var)
        process, output = self.spawn(env)
        client = yield self.connect_when_up(output)

        # Keep sending; kill the process the moment 300 ACKs are in, with more in flight.
        sent = 0

        def pump():
            nonlocal sent
            if sent < 2000 and not client.closed.called:
                client.transport.write(b"".join(speed(n) for n in range(sent + 1, sent + 21)))
                sent += 20

        pumping = task.LoopingCall(pump)
        pumping.start(0.002)
        yield client.wait_replies(300)
        os.kill(process.pid, signal.SIGKILL)
        pumping.stop()
        yield output.ended
        yield client.closed
        acked = [r.acked_sequence_no for r in client.replies if r.result_code == "00"]
        self.assertGreaterEqual(len(acked), 300)
        self.assertEqual(acked, list(range(1, len(acked) + 1)))

        # Restart on the same journal: everything ACKed ends up in PostgreSQL, once.
        process, output = self.spawn(env)
        client = yield self.connect_when_up(output)
        yield wait_for(lambda: set(acked) <= set(speeds(dsn)), timeout=60, what="ACKed telegrams stored")
        stored = speeds(dsn)
        self.assertEqual(len(stored), len(set(stored)))
        self.assertEqual(stored, sorted(stored))

        # The MES sends again what it had no ACK for (and some it had): stored once, all ACKed.
        resend = list(range(len(acked) - 10, sent + 1))
        client.transport.write(b"".join(speed(n) for n in resend))
        yield client.wait_replies(len(resend))
        self.assertEqual({r.result_code for r in client.replies}, {"00"})
        yield wait_for(lambda: speeds(dsn) == list(range(1, sent + 1)), timeout=60, what="all telegrams once")

        # Status: /metrics and /health of the running process.
        agent = Agent(reactor)
        response = yield agent.request(b"GET", f"http://127.0.0.1:{self.status_port}/metrics".encode())
        metrics = parse_text((yield readBody(response)).decode())
        received = {labels.get("tc"): value for name, labels, value in metrics
                    if name == "ccl_mes_telegrams_received_total"}
        self.assertEqual(received, {"4003": len(resend)})
        response = yield agent.request(b"GET", f"http://127.0.0.1:{self.status_port}/health".encode())
        health = json.loads((yield readBody(response)))
        self.assertEqual(response.code, 200)
        self.assertEqual(health["database"], "ok")
        self.assertEqual(len(health["connections"]), 1)
        self.assertIn("127.0.0.1", health["peers"])

    @defer.inlineCallbacks
    def test_a_wrong_setting_stops_start_up_with_a_message_naming_it(self):
        """A wrong setting stops ccl-mes start-up with a message naming it, no traceback."""
        var = Path(self.mktemp()).absolute()
        var.mkdir(parents=True)
        self.port, self.status_port = free_port(), free_port()
        env = self.environment("dbname=x", var, CCL_MES_MAX_CONNECTIONS="lots")
        process, output = self.spawn(env)
        reason = yield output.ended
        self.assertNotEqual(reason.exitCode, 0)
        text = output.output.decode()
        self.assertIn("CCL_MES_MAX_CONNECTIONS", text)
        self.assertIn("'lots' is not a whole number", text)
        self.assertNotIn("Traceback", text)
