"""The control API over real HTTP, with real children and a real database."""

import json
import os
import stat

import attrs
import psycopg2
import treq
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from ccl.config import load_config
from ccl.orchestrator.app import make_service
from tests.support.database import fresh_database, query
from tests.support.orchestrator import environ, http_spec, pause, process_exists, spec, wait_for


class _Collect(protocol.Protocol):
    def __init__(self):
        self.data = b""

    def dataReceived(self, data):  # noqa: N802
        self.data += data


class APITests(TestCase):
    timeout = 120

    def setUp(self):
        self.dsn = fresh_database(self)
        self.port = free_port()
        self.web_port = free_port()
        self.env = environ(self, listen=f"tcp:{self.port}:interface=127.0.0.1", backlog_max="2",
                           mes_silent_after="60")
        self.env["CCL_DATABASE_DSN"] = self.dsn
        self.config = load_config(self.env)
        self.service = make_service(self.config, specs=[http_spec("web", self.web_port), spec("broken", "crash_at_start"),
                                                        spec("lines", "print_lines", "300")], attach_log=False)
        self.service.startService()
        self.monitor = self.service.monitor
        self.token = open(os.path.join(self.env["CCL_PATHS_VAR"], "orchestrator.token")).read().strip()
        self.addCleanup(self._stop)
        return wait_for(lambda: self.monitor.get("web").state == "running", "web running")

    @defer.inlineCallbacks
    def _stop(self):
        pids = [c.pid for c in self.monitor.children.values() if c.pid]
        yield self.service.stopService()
        self.monitor.close_logs()
        for pid in pids:
            self.assertFalse(process_exists(pid))

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    @defer.inlineCallbacks
    def call(self, method, path, token=True, actor=None):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {self.token if token is True else token}"
        if actor:
            headers["X-CCL-Actor"] = actor
        response = yield treq.request(method, self.url(path), headers=headers, persistent=False)
        body = yield response.content()
        try:
            body = json.loads(body)
        except ValueError:
            body = body.decode()
        return response.code, body

    def audit_rows(self, action):
        return query(self.dsn, "SELECT actor, target, result FROM audit_logs WHERE action = %s ORDER BY id", (action,))

    def test_token_file_is_private(self):
        """The control API's token file is readable by its owner only."""
        mode = os.stat(os.path.join(self.env["CCL_PATHS_VAR"], "orchestrator.token")).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    @defer.inlineCallbacks
    def test_post_without_token_is_refused_and_does_nothing(self):
        """A control POST without or with a wrong token gets 401, changes nothing, and the denial is audited."""
        web = self.monitor.get("web")
        pid = web.pid
        for path in ("/stop/web", "/restart/web", "/stop-all"):
            code, body = yield self.call("POST", path, token=False)
            self.assertEqual(code, 401)
            self.assertEqual(body["error"], "unauthorized")
        code, body = yield self.call("POST", "/stop/web", token="wrong-token")
        self.assertEqual(code, 401)
        yield pause(0.5)
        self.assertEqual((web.state, web.pid, web.restarts), ("running", pid, 0))
        yield wait_for(lambda: len(self.audit_rows("orchestrator.stop")) == 2, "denials audited")
        self.assertEqual({row[2] for row in self.audit_rows("orchestrator.stop")}, {"denied"})

    @defer.inlineCallbacks
    def test_stop_start_restart_are_audited_with_the_actor(self):
        """Stop, start and restart work and are audited with the actor."""
        web = self.monitor.get("web")
        pid = web.pid
        code, body = yield self.call("POST", "/stop/web", actor="kim")
        self.assertEqual((code, body["result"], body["status"]["state"]), (200, "ok", "stopped"))
        self.assertFalse(process_exists(pid))
        code, body = yield self.call("GET", "/status/web")
        self.assertEqual((body["state"], body["pid"]), ("stopped", None))
        self.assertIsNotNone(body["last_exit"]["at"])
        code, body = yield self.call("POST", "/start/web")
        self.assertEqual((code, body["result"]), (200, "ok"))
        yield wait_for(lambda: web.state == "running", "web running again")
        pid = web.pid
        code, body = yield self.call("POST", "/restart/web", actor="lee")
        self.assertEqual(code, 200)
        self.assertNotEqual(body["status"]["pid"], pid)
        self.assertEqual(web.last_restart_reason, "restarted by ui:lee")
        yield wait_for(lambda: self.audit_rows("orchestrator.restart"), "restart audited")
        self.assertEqual(self.audit_rows("orchestrator.stop"), [("ui:kim", "web", "ok")])
        self.assertEqual(self.audit_rows("orchestrator.start"), [("token", "web", "ok")])
        self.assertEqual(self.audit_rows("orchestrator.restart"), [("ui:lee", "web", "ok")])

    @defer.inlineCallbacks
    def test_status_of_every_service_and_unknown_ids(self):
        """/status gives every service's state, health, uptime and metrics; unknown ids and routes get 404."""
        yield wait_for(lambda: self.monitor.get("web").metrics, "metrics scraped")
        code, body = yield self.call("GET", "/status")
        self.assertEqual(code, 200)
        by_id = {s["service"]: s for s in body["services"]}
        self.assertEqual(set(by_id), {"web", "broken", "lines"})
        web = by_id["web"]
        self.assertEqual((web["state"], web["health"]["status"]), ("running", "ok"))
        self.assertGreater(web["uptime"], 0)
        self.assertIn('test_hits_total{kind="get"}', web["metrics"])
        for method, path in (("GET", "/status/nope"), ("POST", "/stop/nope"), ("POST", "/start/nope"),
                             ("GET", "/logs/nope")):
            code, body = yield self.call(method, path)
            self.assertEqual((code, body["error"]), (404, "unknown service"), path)
        code, body = yield self.call("GET", "/no/such/route")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_ccl_ctl_status_restart_logs(self):
        """ccl ctl status, restart and logs work against the running orchestrator."""
        import sys

        from twisted.internet.utils import getProcessOutputAndValue

        from ccl.orchestrator.services import child_environment

        env = {**child_environment(), **self.env}

        def ctl(*args):
            return getProcessOutputAndValue(sys.executable, ["-m", "ccl", "ctl", *args], env=env)

        out, err, code = yield ctl("status")
        self.assertEqual(code, 0, err)
        self.assertRegex(out.decode(), r"web\s+running")
        pid = self.monitor.get("web").pid
        out, err, code = yield ctl("restart", "web")
        self.assertEqual(code, 0, err)
        self.assertNotEqual(self.monitor.get("web").pid, pid)
        out, err, code = yield ctl("logs", "web", "-n", "3")
        self.assertEqual((code, len(out.decode().splitlines())), (0, 3))
        out, err, code = yield ctl("stop", "nope")
        self.assertEqual(code, 1)
        self.assertIn(b"unknown service", err)
        # "broken" has no health check: between its start and its crash it counts as running, and
        # a wait that polls then finds all running. Once it is fatal, wait must say so.
        yield wait_for(lambda: self.monitor.get("broken").state == "fatal", "broken fatal")
        out, err, code = yield ctl("wait", "--timeout", "30")
        self.assertEqual(code, 1)  # "broken" is fatal: wait says so instead of waiting forever
        self.assertIn(b"broken", err)

    @defer.inlineCallbacks
    def test_stop_all_and_start_all(self):
        """/stop-all stops every service and /start-all starts them again."""
        code, body = yield self.call("POST", "/stop-all")
        self.assertEqual(code, 200)
        self.assertEqual({s["state"] for s in body["status"]}, {"stopped"})
        code, body = yield self.call("POST", "/start-all")
        self.assertEqual(code, 200)
        yield wait_for(lambda: self.monitor.get("web").state == "running", "web running")

    @defer.inlineCallbacks
    def test_logs_tail_and_limits(self):
        """/logs gives the last N lines (100 by default) and refuses a bad count."""
        lines = self.monitor.get("lines")

        def all_written():
            # stdout and stderr are two pipes: the end mark (stdout) may come in before the
            # last stderr lines, so wait for everything, not for the mark at the end.
            tail = lines.log.tail(400)
            return "done 300" in tail and sum(line.startswith("line ") for line in tail) == 300

        yield wait_for(all_written, "all 300 lines and the end mark written")
        code, body = yield self.call("GET", "/logs/lines?lines=5")
        self.assertEqual(code, 200)
        self.assertEqual(body["lines"], lines.log.tail(5))
        self.assertEqual(len(body["lines"]), 5)
        code, body = yield self.call("GET", "/logs/lines")
        self.assertEqual(len(body["lines"]), 100)
        for bad in ("5001", "-1", "x"):
            code, body = yield self.call("GET", f"/logs/lines?lines={bad}")
            self.assertEqual(code, 400)
        code, body = yield self.call("GET", "/logs/orchestrator?lines=10")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_follow_streams_new_lines_as_server_sent_events(self):
        """/logs?follow=1 streams new lines as server-sent events and unsubscribes when the client leaves."""
        client = _Collect()
        connected = yield TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(
            protocol.Factory.forProtocol(lambda: client))
        connected.transport.write(b"GET /logs/web?follow=1&lines=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        yield wait_for(lambda: b"data: " in client.data, "the tail")
        self.assertIn(b"text/event-stream", client.data)
        yield self.call("POST", "/restart/web")
        yield wait_for(lambda: b"[orchestrator] started pid" in client.data.split(b"\r\n\r\n", 1)[1], "new lines")
        connected.transport.loseConnection()
        yield pause(0.2)
        self.assertEqual(self.monitor.get("web").log._observers, [])

    @defer.inlineCallbacks
    def test_metrics_per_service_and_disks(self):
        """/metrics has each service's up, restarts, memory, CPU, disk figures and its own labelled metrics."""
        yield wait_for(lambda: self.monitor.get("web").metrics, "metrics scraped")
        code, text = yield self.call("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn('ccl_orchestrator_service_up{service="web"} 1', text)
        self.assertIn('ccl_orchestrator_service_restarts_total{service="web"}', text)
        self.assertIn('ccl_orchestrator_service_rss_bytes{service="web"}', text)
        self.assertIn('ccl_orchestrator_service_cpu_seconds{service="web"}', text)
        self.assertIn('ccl_orchestrator_disk_used_bytes{volume="images"}', text)
        self.assertIn('test_hits_total{kind="get",service="web"}', text)

    @defer.inlineCallbacks
    def test_host_figures_in_host_status_and_metrics(self):
        """GET /host serves this machine's CPU, load, memory, the image root's and the journal's
        volumes and the network rates; /status carries the same, /metrics the gauges."""
        import psutil

        yield wait_for(lambda: (self.service.host.latest() or {}).get("cpu", {}).get("percent") is not None,
                       "two host readings")
        code, host = yield self.call("GET", "/host", token=False)
        self.assertEqual(code, 200)
        self.assertTrue(0.0 <= host["cpu"]["percent"] <= 100.0)
        self.assertEqual(host["cpu"]["count"], psutil.cpu_count())
        self.assertEqual(host["memory"]["total"], psutil.virtual_memory().total)
        self.assertTrue(0 < host["memory"]["used"] < host["memory"]["total"])
        disks = {d["volume"]: d for d in host["disks"]}
        # the DSN is given, so no local database volume; images and the journal under var/
        self.assertEqual(set(disks), {"images", "journal"})
        self.assertEqual(disks["journal"]["path"], os.path.join(self.env["CCL_PATHS_VAR"], "journal"))
        self.assertEqual(disks["images"]["total"], psutil.disk_usage(self.env["CCL_PATHS_VAR"]).total)
        self.assertGreaterEqual(host["network"]["rx_bytes_per_s"], 0)
        self.assertGreaterEqual(host["network"]["tx_bytes_per_s"], 0)
        self.assertIn("lo", [i["name"] for i in host["network"]["interfaces"]])
        code, status = yield self.call("GET", "/status")
        self.assertEqual(status["host"]["memory"]["total"], host["memory"]["total"])
        code, text = yield self.call("GET", "/metrics")
        self.assertIn(f"ccl_orchestrator_host_memory_total_bytes {host['memory']['total']}", text)
        self.assertIn("ccl_orchestrator_host_cpu_percent ", text)
        self.assertIn('ccl_orchestrator_host_network_received_bytes_per_second{interface="lo"}', text)

    @defer.inlineCallbacks
    def test_alerts_are_raised_notified_cleared_and_acknowledged(self):
        """Alerts are raised, announced, cleared when the condition ends, and acknowledged."""
        listener = psycopg2.connect(self.dsn)
        listener.autocommit = True
        self.addCleanup(listener.close)
        listener.cursor().execute("LISTEN ccl_events")
        yield wait_for(lambda: self.monitor.get("broken").state == "fatal", "broken fatal")
        yield wait_for(lambda: query(self.dsn, "SELECT 1 FROM alerts WHERE rule = 'service.fatal' AND subject = 'broken'"),
                       "fatal alert")
        # 고기원 backlog above 2, and the MES silent for an hour while the line runs
        connection = psycopg2.connect(self.dsn)
        with connection, connection.cursor() as cursor:
            for n in range(3):
                cursor.execute("INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw)"
                               " VALUES ('speed', 'tc_4003_speed', %s, '4003', %s, 'x')", (n, n))
            cursor.execute("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                           " VALUES ('CCL1', 1, now() - interval '1 hour', now() - interval '1 hour', 120, 'x')")
        connection.close()
        yield wait_for(lambda: len(query(self.dsn, "SELECT 1 FROM alerts WHERE cleared_at IS NULL AND rule IN"
                                                   " ('gokiwon.backlog', 'mes.silent')")) == 2, "backlog and silence alerts")
        query(self.dsn, "UPDATE forward_outbox SET state = 'delivered'")
        yield wait_for(lambda: query(self.dsn, "SELECT 1 FROM alerts WHERE rule = 'gokiwon.backlog'"
                                               " AND cleared_at IS NOT NULL"), "backlog cleared")
        listener.poll()
        events = [json.loads(n.payload) for n in listener.notifies]
        self.assertIn(("raised", "service.fatal", "broken"), [(e["event"], e["rule"], e["subject"]) for e in events])
        self.assertIn(("cleared", "gokiwon.backlog", "gokiwon"), [(e["event"], e["rule"], e["subject"]) for e in events])
        code, body = yield self.call("GET", "/alerts")
        fatal = [a for a in body["alerts"] if a["rule"] == "service.fatal"][0]
        code, body = yield self.call("POST", f"/alerts/{fatal['id']}/ack", token=False)
        self.assertEqual(code, 401)
        code, body = yield self.call("POST", f"/alerts/{fatal['id']}/ack", actor="park")
        self.assertEqual((code, body["result"]), (200, "ok"))
        self.assertEqual(query(self.dsn, "SELECT acknowledged_by FROM alerts WHERE id = %s", (fatal["id"],)),
                         [("ui:park",)])
        # a full disk (watermark 1 %) and a restart loop (2 restarts) are raised too
        self.service.rules._settings = attrs.evolve(self.service.rules._settings, disk_watermark=1.0,
                                                    restart_loop_count=2)
        yield wait_for(lambda: len(query(self.dsn, "SELECT 1 FROM alerts WHERE cleared_at IS NULL AND"
                                                   " ((rule = 'disk.watermark' AND subject = 'images') OR"
                                                   " (rule = 'service.restart_loop' AND subject = 'broken'))")) == 2,
                       "disk and restart-loop alerts")
        # starting the fatal service again clears its alert once it is no longer fatal
        self.monitor.stop("broken")
        yield wait_for(lambda: query(self.dsn, "SELECT 1 FROM alerts WHERE rule = 'service.fatal'"
                                               " AND cleared_at IS NOT NULL"), "fatal cleared")


class DownRuleTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_a_wanted_service_in_backoff_is_down(self):
        """A wanted service in back-off counts as down; a stopped one does not."""
        from ccl.orchestrator.alerts import AlertRules
        from ccl.orchestrator.monitor import Orchestrator
        from tests.support.orchestrator import settings

        s = settings(self, fatal_after="10", restart_delay="30", down_alert_after="0")
        monitor = Orchestrator(reactor, [spec("broken", "crash_at_start")], s)
        monitor.startService()
        self.addCleanup(lambda: monitor.stopService().addCallback(lambda _: monitor.close_logs()))
        yield wait_for(lambda: monitor.get("broken").state == "backoff", "backoff")
        rules = AlertRules(reactor, monitor, None, s, {})
        rules.service_conditions()  # the first sight starts the clock
        conditions = {(c.rule, c.subject) for c in rules.service_conditions()}
        self.assertIn(("service.down", "broken"), conditions)
        yield monitor.stop("broken")
        self.assertNotIn(("service.down", "broken"), {(c.rule, c.subject) for c in rules.service_conditions()})
