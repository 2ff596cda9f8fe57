"""The mes.nak_rate and postgres.write_failures alert rules: on the real database, and with a
real ccl-mes run by the orchestrator (NAKs, a refused write, an unreachable database)."""

import os

import attrs
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from ccl.config import load_config
from ccl.orchestrator.alerts import AlertRules
from ccl.orchestrator.app import make_service
from ccl.orchestrator.counters import CounterWindow, failed_writes
from ccl.orchestrator.monitor import Orchestrator
from ccl.orchestrator.services import children
from tests.support.database import DatabaseTestCase, fresh_database, query
from tests.support.mes import LAYOUTS, connect, speed, wpd
from tests.support.orchestrator import environ, process_exists, settings, wait_for


class CounterWindowTests(TestCase):
    def test_rise_within_the_window_only(self):
        """Only the rise after the window's start counts; the sample before it is the baseline."""
        window = CounterWindow(10)
        for at, value in ((0, 0), (5, 3), (12, 4), (14, 4)):
            window.add(at, value)
        self.assertEqual(window.increase(14), 1 + 3)  # 3 at t=5 is still within (4, 14]
        self.assertEqual(window.increase(16), 1)      # t=5 left the window: only 3 -> 4
        window.add(30, 4)
        self.assertEqual(window.increase(30), 0)

    def test_a_restart_counts_from_zero(self):
        """A counter below the one before is a new process: its value is the rise."""
        window = CounterWindow(60)
        for at, value in ((0, 5), (1, 7), (2, 0), (3, 2)):
            window.add(at, value)
        self.assertEqual(window.increase(3), 2 + 0 + 2)

    def test_failed_writes_sum_the_failed_samples_of_any_service_prefix(self):
        """Failed writes sum the failed pg_writes samples of every service, nothing else."""
        samples = [("ccl_mes_pg_writes_total", {"result": "ok"}, 40.0),
                   ("ccl_mes_pg_writes_total", {"result": "failed"}, 3.0),
                   ("ccl_x_pg_writes_total", {"result": "failed"}, 2.0),
                   ("ccl_mes_telegrams_rejected_total", {"code": "12"}, 9.0)]
        self.assertEqual(failed_writes(samples), 5.0)
        self.assertEqual(failed_writes([]), 0.0)


class NakRateRuleTests(DatabaseTestCase, TestCase):
    def setUp(self):
        self.s = settings(self, nak_rate_max="10", nak_rate_window="300", nak_rate_min_telegrams="10")
        self.monitor = Orchestrator(reactor, [], self.s)
        self.addCleanup(self.monitor.close_logs)
        return self.start_database()

    def stored(self, count: int, age: str = "0 s") -> None:
        for n in range(count):
            self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                     " VALUES ('CCL1', %s, now() - %s::interval, now() - %s::interval, 100, 'x')", (n, age, age))

    def refused(self, count: int, code: str = "12", listener: str = "mes", age: str = "0 s") -> None:
        for n in range(count):
            self.sql("INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, raw)"
                     " VALUES (now() - %s::interval, '127.0.0.1:1', %s, %s, 'test', 'x')", (age, listener, code))

    def open_alerts(self):
        return self.sql("SELECT rule, subject, message, details FROM alerts WHERE cleared_at IS NULL")

    @defer.inlineCallbacks
    def test_raised_above_the_share_and_cleared_below_it(self):
        """2 NAKs among 12 telegrams (16.7 % > 10 %) raise it; ACKed records the database refused
        (code 00), the 고기원 ACK link's refusals and telegrams older than the window do not
        count; 20 more good telegrams (2 of 32) clear it."""
        rules = AlertRules(reactor, self.monitor, self.db, self.s, {})
        self.stored(10)
        self.refused(2, "12")
        self.refused(5, "00")
        self.refused(5, "13", listener="gokiwon-ack")
        self.refused(50, "11", age="1 hour")
        changes = yield rules.evaluate()
        self.assertEqual(changes, [("raised", "mes.nak_rate", "mes")])
        ((rule, subject, message, details),) = self.open_alerts()
        self.assertEqual(details, {"refused": 2, "received": 12, "rate_percent": 16.67, "by_code": {"12": 2}})
        self.assertIn("2 of 12 MES telegrams refused in the last 300 s (16.7 %, limit 10 %)", message)
        self.stored(20)
        changes = yield rules.evaluate()
        self.assertEqual(changes, [("cleared", "mes.nak_rate", "mes")])
        self.assertEqual(self.open_alerts(), [])

    @defer.inlineCallbacks
    def test_too_few_telegrams_are_not_a_rate(self):
        """Below nak_rate_min_telegrams in the window nothing is raised, even at 100 % refused."""
        rules = AlertRules(reactor, self.monitor, self.db, self.s, {})
        self.refused(9, "10")
        self.assertEqual((yield rules.evaluate()), [])
        self.refused(1, "10")
        self.assertEqual((yield rules.evaluate()), [("raised", "mes.nak_rate", "mes")])


def _unreadable_tc(telegram: bytes) -> bytes:
    """``telegram`` with a TC code that does not read as a number: NAK 13."""
    start, end = LAYOUTS.header_spans["tc_code"]
    return telegram[:start] + b"4X02" + telegram[end:]


class RealMesTests(TestCase):
    """ccl-mes as the orchestrator's child (its twistd plugin), the alerts in PostgreSQL."""

    timeout = 180

    @defer.inlineCallbacks
    def orchestrate(self, child_dsn: str | None = None, **overrides):
        """The orchestrator running only mes-tcp-service; ``child_dsn``: the database the service
        is given (the orchestrator's own is always the test's)."""
        self.dsn = fresh_database(self)
        self.mes_port = free_port()
        env = environ(self, services="mes-tcp-service", start_timeout="60", listen=f"tcp:{free_port()}:interface=127.0.0.1",
                      **overrides)
        env.update({"CCL_DATABASE_DSN": self.dsn, "CCL_GOKIWON_ENABLED": "false",
                    "CCL_MES_LISTEN": f"tcp:{self.mes_port}:interface=127.0.0.1",
                    "CCL_MES_ACK_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
                    "CCL_MES_STATUS_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1"})
        child_env = dict(env, CCL_DATABASE_DSN=child_dsn or self.dsn)
        specs = children(load_config(child_env), environ={**os.environ, **child_env})
        # The rule compares the service's received_at with PostgreSQL's now(): under
        # scripts/run-tests-at.sh the service must run on the same shifted clock as the database.
        faked = {k: v for k, v in os.environ.items() if k == "LD_PRELOAD" or k.startswith("FAKETIME")}
        specs = [attrs.evolve(spec, env={**spec.env, **faked}) for spec in specs]
        self.service = make_service(load_config(env), specs=specs, attach_log=False)
        self.service.startService()
        self.monitor = self.service.monitor
        self.addCleanup(self._stop)
        self.mes = self.monitor.get("mes-tcp-service")
        yield wait_for(lambda: self.mes.state in ("running", "fatal"), "ccl-mes healthy", timeout=90)
        self.assertEqual(self.mes.state, "running", "\n".join(self.mes.log.tail(30)))

    @defer.inlineCallbacks
    def _stop(self):
        pids = [c.pid for c in self.monitor.children.values() if c.pid]
        yield self.service.stopService()
        self.monitor.close_logs()
        for pid in pids:
            self.assertFalse(process_exists(pid))

    def alert(self, rule: str, open_: bool = True):
        return query(self.dsn, "SELECT subject, message, details FROM alerts WHERE rule = %s AND"
                               f" cleared_at IS {'' if open_ else 'NOT '}NULL", (rule,))

    @defer.inlineCallbacks
    def test_naks_and_a_refused_write_raise_their_alerts_and_clear(self):
        """3 NAKs among 6 telegrams raise mes.nak_rate; a write PostgreSQL refuses (a trigger)
        shows in ccl-mes's failed-write counter and raises postgres.write_failures; both clear
        once the window holds no failure and enough good telegrams."""
        yield self.orchestrate(nak_rate_max="30", nak_rate_min_telegrams="6", nak_rate_window="600",
                               pg_failures_window="3", pg_unavailable_after="600")
        client = yield connect(self, self.mes_port)
        client.transport.write(b"".join(speed(1 + n) + _unreadable_tc(wpd(100 + n)) for n in range(3)))
        yield client.wait_replies(6)
        self.assertEqual(sorted(r.result_code for r in client.replies), ["00"] * 3 + ["13"] * 3)
        (subject, message, details), = yield wait_for(lambda: self.alert("mes.nak_rate"), "the NAK-rate alert")
        self.assertEqual((subject, details["refused"], details["received"]), ("mes", 3, 6))
        self.assertEqual(self.alert("postgres.write_failures"), [])

        query(self.dsn, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$")
        query(self.dsn, "CREATE TRIGGER refuse BEFORE INSERT ON tc_4003_speed FOR EACH ROW EXECUTE FUNCTION refuse()")
        client.transport.write(speed(50))
        yield client.wait_replies(7)
        (subject, message, details), = yield wait_for(lambda: self.alert("postgres.write_failures"),
                                                      "the write-failure alert")
        self.assertEqual(subject, "mes-tcp-service")
        self.assertIn("failed PostgreSQL writes in 3 s", message)
        self.assertGreaterEqual(details["failed_writes"], 1)
        # ACKed and kept as a rejected telegram with code 00: a write failure, not a NAK
        self.assertEqual(query(self.dsn, "SELECT result_code FROM rejected_telegrams WHERE sequence_no = 50"), [("00",)])

        query(self.dsn, "DROP TRIGGER refuse ON tc_4003_speed")
        client.transport.write(b"".join(speed(200 + n) for n in range(10)))
        yield client.wait_replies(17)
        yield wait_for(lambda: self.alert("postgres.write_failures", open_=False), "the write-failure alert cleared")
        yield wait_for(lambda: self.alert("mes.nak_rate", open_=False), "the NAK-rate alert cleared")  # 3 of 16
        self.assertEqual(self.alert("mes.nak_rate") + self.alert("postgres.write_failures"), [])

    @defer.inlineCallbacks
    def test_a_service_whose_database_is_away_raises_write_failures(self):
        """ccl-mes given a database that does not answer: its /health says so (it stays up and
        ACKs from its journal), its writes fail, and the alert names both."""
        closed = free_port()
        yield self.orchestrate(child_dsn=f"host=127.0.0.1 port={closed} user=postgres dbname=postgres"
                                         " connect_timeout=1",
                               pg_unavailable_after="0", pg_failures_window="600")
        (subject, message, details), = yield wait_for(lambda: self.alert("postgres.write_failures"),
                                                      "the write-failure alert")
        self.assertEqual(subject, "mes-tcp-service")
        # The row keeps the reason(s) seen when it was raised; the rules see both soon after.
        condition = yield wait_for(lambda: [c for c in self.service.rules.last_conditions
                                            if c.rule == "postgres.write_failures" and "database unavailable" in c.message
                                            and "failed PostgreSQL writes" in c.message], "both reasons")
        details = condition[0].details
        self.assertEqual(details["database"], "unavailable")
        self.assertIn(f"port {closed}", details["database_error"])
        self.assertGreaterEqual(details["failed_writes"], 1)
        self.assertEqual(self.mes.state, "running")
        self.assertEqual(self.mes.reported["database"], "unavailable")
