"""시스템 page against a real HTTP server speaking the orchestrator's API, and the alerts."""

from __future__ import annotations

import html
import json

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from ccl.adapters.storage.postgres import Database
from ccl.adapters.web.ui.host_figures import host_view, size
from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.ui import json_of, start_ui
from tests.test_postgres_adapter import wait_for


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


async def with_orchestrator(testcase, token="s3cret-token", write_token=True):
    fake = FakeOrchestrator(token)
    url = fake.start(testcase)
    ui = await start_ui(testcase, orchestrator_url=url)
    if write_token:
        (ui.var / "orchestrator.token").write_text(token + "\n")
    return ui, fake


class ServiceTableTests(TestCase):
    @d
    async def test_page_lists_the_services_with_buttons_for_admins_only(self):
        """시스템 lists the orchestrator's services with their last exit; only admins get the control buttons."""
        ui, fake = await with_orchestrator(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.get("/system", admin)
        self.assertEqual(response.code, 200)
        text = body.decode()
        self.assertIn('data-service="mes-tcp-service"', text)
        self.assertIn("signal 9", text)  # ui-service's last exit
        self.assertIn('data-action="restart" data-service="ui-service"', text)
        self.assertEqual(fake.calls[-1]["path"], "/status")
        operator = ui.add_user("kim", "operator")
        response, body = await ui.get("/system", operator)
        self.assertEqual(response.code, 200)
        self.assertNotIn("data-action=", body.decode())
        self.assertIn('data-log="ui-service"', body.decode())
        viewer = ui.add_user("lee", "viewer")
        response, body = await ui.get("/system", viewer)
        self.assertNotIn("data-log=", body.decode())

    @d
    async def test_services_json(self):
        """/api/system/services gives the orchestrator's services as JSON to any user."""
        ui, fake = await with_orchestrator(self)
        response, body = await ui.get("/api/system/services", ui.add_user("lee", "viewer"))
        self.assertEqual(response.code, 200)
        services = json_of(body)["services"]
        self.assertEqual([s["id"] for s in services], ["mes-tcp-service", "ui-service"])
        self.assertEqual(services[1]["restarts"], 2)

    @d
    async def test_restart_goes_to_the_orchestrator_with_token_and_actor_and_is_audited(self):
        """A control action goes to the orchestrator with its token and the actor, and is audited."""
        ui, fake = await with_orchestrator(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.post("/api/system/services/mes-tcp-service/stop", admin, json={})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json_of(body)["result"], "ok")
        call = fake.calls[-1]
        self.assertEqual((call["method"], call["path"]), ("POST", "/stop/mes-tcp-service"))
        self.assertEqual(call["authorization"], "Bearer s3cret-token")
        self.assertEqual(call["actor"], "boss")
        self.assertEqual(fake.services["mes-tcp-service"]["state"], "stopped")
        self.assertEqual(ui.sql("SELECT actor, action, target, result, client_address FROM audit_logs"),
                         [("boss", "service.stop", "mes-tcp-service", "ok", "127.0.0.1")])

    @d
    async def test_operator_cannot_restart(self):
        """An operator's control action is refused with 403 and never reaches the orchestrator."""
        ui, fake = await with_orchestrator(self)
        response, _ = await ui.post("/api/system/services/mes-tcp-service/restart", ui.add_user("kim", "operator"),
                                    json={})
        self.assertEqual(response.code, 403)
        self.assertFalse([c for c in fake.calls if c["method"] == "POST"])

    @d
    async def test_orchestrator_refusing_the_token_is_reported_and_audited(self):
        """The orchestrator refusing the token is answered with 502 naming its 401, and audited."""
        ui, fake = await with_orchestrator(self, write_token=False)
        response, body = await ui.post("/api/system/services/ui-service/restart", ui.add_user("boss", "admin"),
                                       json={})
        self.assertEqual(response.code, 502)
        self.assertEqual(json_of(body)["details"]["code"], 401)
        self.assertEqual(fake.calls[-1]["authorization"], "")
        self.assertEqual(ui.sql("SELECT action, result FROM audit_logs"), [("service.restart", "refused 401")])

    @d
    async def test_unknown_service_and_action(self):
        """An unknown service or action gets 404; a malformed service id 400."""
        ui, fake = await with_orchestrator(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.post("/api/system/services/nope/restart", admin, json={})
        self.assertEqual(response.code, 404)
        response, body = await ui.post("/api/system/services/ui-service/explode", admin, json={})
        self.assertEqual(response.code, 404)
        self.assertEqual(json_of(body)["error"], "unknown action")
        response, body = await ui.post("/api/system/services/a%20b/restart", admin, json={})
        self.assertEqual(response.code, 400)

    @d
    async def test_unreachable_orchestrator_is_said_clearly(self):
        """An unreachable orchestrator is said clearly on the page (its address) and as 503 in the API."""
        ui = await start_ui(self, orchestrator_url="http://127.0.0.1:9")  # nothing listens on port 9
        admin = ui.add_user("boss", "admin")
        response, body = await ui.get("/system", admin)
        self.assertEqual(response.code, 200)
        self.assertIn("오케스트레이터에 연결할 수 없습니다", body.decode())
        self.assertIn("http://127.0.0.1:9", body.decode())
        response, body = await ui.get("/api/system/services", admin)
        self.assertEqual(response.code, 503)
        self.assertEqual(json_of(body)["error"], "orchestrator unreachable")
        response, body = await ui.post("/api/system/services/ui-service/restart", admin, json={})
        self.assertEqual(response.code, 503)
        self.assertEqual(ui.sql("SELECT action, result FROM audit_logs"), [("service.restart", "unreachable")])


class HostFiguresTests(TestCase):
    @d
    async def test_page_and_json_show_the_host_figures_of_the_orchestrator(self):
        """The 호스트 card shows CPU, load, memory, network and a row per volume from the
        orchestrator's /status (real readings of this machine); the JSON refresh carries the
        same texts; in English the labels change, not the figures."""
        import psutil

        ui, fake = await with_orchestrator(self)
        viewer = ui.add_user("lee", "viewer")
        view = host_view(fake.host)
        response, body = await ui.get("/system", viewer)
        self.assertEqual(response.code, 200)
        text = body.decode()
        self.assertIn('<section class="card" id="host">', text)  # not hidden
        self.assertIn("호스트", text)
        for key in ("cpu", "load", "memory", "network_in", "network_out", "sampled_at"):
            self.assertIn(f'data-host="{key}">{html.escape(view[key])}<', text)
        self.assertIn(f"{size(psutil.virtual_memory().total)} (", view["memory"])  # total as psutil says
        self.assertIn(f"({psutil.cpu_count()} CPU)", view["cpu"])
        for disk in view["disks"]:
            self.assertIn(f'<tr data-volume="{disk["volume"]}">', text)
            self.assertIn(f'data-disk="total">{disk["total"]}<', text)
        self.assertIn("이미지 저장소", text)
        self.assertIn("MES 저널", text)
        response, body = await ui.get("/api/system/services", viewer)
        answer = json_of(body)
        self.assertEqual(answer["host_view"], view)
        self.assertEqual(answer["host"]["memory"]["total"], psutil.virtual_memory().total)
        response, body = await ui.get("/system?lang=en", viewer)
        self.assertIn("Memory in use", body.decode())
        self.assertIn(f'data-host="memory">{html.escape(view["memory"])}<', body.decode())

    @d
    async def test_an_orchestrator_without_host_figures_hides_the_card(self):
        """An orchestrator that sends no host block: the card stays hidden, the services show."""
        ui, fake = await with_orchestrator(self)
        fake.host = None
        viewer = ui.add_user("lee", "viewer")
        response, body = await ui.get("/system", viewer)
        self.assertEqual(response.code, 200)
        self.assertIn('<section class="card" id="host" hidden>', body.decode())
        self.assertIn('data-service="mes-tcp-service"', body.decode())
        response, body = await ui.get("/api/system/services", viewer)
        self.assertEqual((json_of(body)["host"], json_of(body)["host_view"]), (None, None))


class HostViewTests(TestCase):
    def test_sizes_in_binary_units(self):
        """Sizes are shown in binary units, '-' when unknown."""
        self.assertEqual([size(v) for v in (None, 0, 1023, 1536, 3.5 * 2**30, 2**50)],
                         ["-", "0 B", "1023 B", "1.5 KiB", "3.5 GiB", "1024.0 TiB"])

    def test_unknown_rates_and_plant_time(self):
        """Before its second reading the orchestrator has no CPU % or rates: they show as -;
        the reading's time is shown in plant time (KST)."""
        view = host_view({"sampled_at": "2026-01-05T23:30:00+0000", "cpu": {"percent": None, "count": 4, "load": [1, 0.5, 0.25]},
                          "memory": {"total": 8 * 2**30, "used": 2 * 2**30, "available": 6 * 2**30, "percent": 25.0},
                          "disks": [{"volume": "database", "path": "/var/lib/pg", "total": 2**40, "used": 2**39,
                                     "free": 2**39, "percent": 50.0}],
                          "network": {"rx_bytes_per_s": None, "tx_bytes_per_s": None, "interfaces": []}})
        self.assertEqual(view["sampled_at"], "2026-01-06 08:30:00")
        self.assertEqual((view["cpu"], view["load"]), ("- (4 CPU)", "1.00 · 0.50 · 0.25"))
        self.assertEqual(view["memory"], "2.0 GiB / 8.0 GiB (25.0 %)")
        self.assertEqual((view["network_in"], view["network_out"]), ("-", "-"))
        self.assertEqual(view["disks"], [{"volume": "database", "label": "데이터베이스", "path": "/var/lib/pg",
                                          "used": "512.0 GiB", "free": "512.0 GiB", "total": "1.0 TiB",
                                          "percent": "50.0 %"}])
        self.assertIsNone(host_view(None))


class _Collect(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.lost = defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.lost.callback(None)


class LogTests(TestCase):
    @d
    async def test_tail(self):
        """A service's log tail is relayed from the orchestrator; a bad count is 400, an unknown service 404."""
        ui, fake = await with_orchestrator(self)
        response, body = await ui.get("/api/system/services/ui-service/logs?lines=5", ui.add_user("kim", "operator"))
        self.assertEqual(response.code, 200)
        self.assertEqual(json_of(body)["lines"], [f"line {n}" for n in range(296, 301)])
        self.assertEqual(fake.calls[-1]["path"], "/logs/ui-service?lines=5")
        response, body = await ui.get("/api/system/services/ui-service/logs?lines=0", ui.add_user("k2", "operator"))
        self.assertEqual(response.code, 400)
        response, body = await ui.get("/api/system/services/ghost/logs", ui.add_user("k3", "operator"))
        self.assertEqual(response.code, 404)

    @d
    async def test_live_tail_relays_new_lines_and_lets_go_when_the_browser_leaves(self):
        """The live log tail relays new lines as events and lets the orchestrator go when the browser leaves."""
        ui, fake = await with_orchestrator(self)
        operator = ui.add_user("kim", "operator")
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        response = await agent.request(b"GET", (ui.base + "/api/system/services/ui-service/logs/stream").encode(),
                                       _headers({"cookie": f"ccl_session={operator.token}"}))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        body = _Collect()
        response.deliverBody(body)
        await wait_for(lambda: b"data: line 300\n\n" in body.data)
        self.assertEqual(len(fake.followers), 1)
        fake.push("새 줄 301")
        await wait_for(lambda: "data: 새 줄 301\n\n".encode() in body.data)
        # The browser leaves: the UI closes its own connection to the orchestrator.
        body.transport.stopProducing()
        await body.lost
        await wait_for(lambda: not fake.followers)

    @d
    async def test_live_tail_reports_an_unreachable_orchestrator_as_an_event(self):
        """An unreachable orchestrator is reported to the live log tail as an error event."""
        ui = await start_ui(self, orchestrator_url="http://127.0.0.1:9")
        response, body = await ui.get("/api/system/services/ui-service/logs/stream", ui.add_user("kim", "operator"))
        self.assertEqual(response.code, 200)
        self.assertIn(b"event: error\ndata: ", body)


def _headers(values):
    from twisted.web.http_headers import Headers

    return Headers({k.encode(): [v.encode()] for k, v in values.items()})


class AlertTests(TestCase):
    def _seed(self, ui):
        ui.sql("INSERT INTO alerts (rule, subject, severity, message, raised_at) VALUES"
               " ('service_down', 'image-receiver', 'critical', '서비스 중단', now() - interval '5 minutes'),"
               " ('disk', '/var/lib/ccl-images', 'warning', 'disk 91%%', now() - interval '1 day')")
        ui.sql("UPDATE alerts SET cleared_at = now() - interval '20 hours' WHERE rule = 'disk'")
        return {rule: i for i, rule in ui.sql("SELECT id, rule FROM alerts")}

    @d
    async def test_open_and_past_on_the_page_and_in_json(self):
        """Open and past alerts are shown apart, on the page and as JSON; viewers cannot acknowledge."""
        ui = await start_ui(self)
        self._seed(ui)
        viewer = ui.add_user("lee", "viewer")
        response, body = await ui.get("/system", viewer)
        text = body.decode()
        open_part, past_part = text.split('id="past-alerts"')
        self.assertIn("서비스 중단", open_part)
        self.assertIn("disk 91%", past_part)
        self.assertNotIn("data-ack=", text)  # viewers cannot acknowledge
        response, body = await ui.get("/api/alerts?state=open", viewer)
        self.assertEqual([a["rule"] for a in json_of(body)["alerts"]], ["service_down"])
        response, body = await ui.get("/api/alerts?state=past", viewer)
        self.assertEqual([a["rule"] for a in json_of(body)["alerts"]], ["disk"])
        response, body = await ui.get("/api/alerts?state=bogus", viewer)
        self.assertEqual(response.code, 400)

    @d
    async def test_acknowledge_sets_who_and_when_notifies_and_audits(self):
        """Acknowledging an alert records who and when, announces it and audits it."""
        ui = await start_ui(self)
        ids = self._seed(ui)
        events = []
        listener = Database(reactor, ui.dsn, size=1)
        self.addCleanup(listener.close)
        await listener.start()
        await listener.listen("ccl_events", events.append)
        operator = ui.add_user("kim", "operator")
        response, body = await ui.get("/system", operator)
        self.assertIn(f'data-ack="{ids["service_down"]}"', body.decode())
        response, body = await ui.post(f"/api/alerts/{ids['service_down']}/ack", operator, json={})
        self.assertEqual(response.code, 200, body)
        self.assertEqual(json_of(body)["alert"]["acknowledged_by"], "kim")
        by, at_set = ui.sql("SELECT acknowledged_by, acknowledged_at IS NOT NULL FROM alerts WHERE id = %s",
                            (ids["service_down"],))[0]
        self.assertEqual((by, at_set), ("kim", True))
        await wait_for(lambda: events)
        self.assertEqual(events[0]["event"], "acknowledged")
        self.assertEqual(events[0]["id"], ids["service_down"])
        # A second acknowledge changes nothing.
        response, body = await ui.post(f"/api/alerts/{ids['service_down']}/ack", ui.add_user("boss", "admin"), json={})
        self.assertEqual(response.code, 409)
        self.assertEqual(ui.sql("SELECT acknowledged_by FROM alerts WHERE id = %s", (ids["service_down"],)), [("kim",)])
        response, body = await ui.post("/api/alerts/999999/ack", operator, json={})
        self.assertEqual(response.code, 404)
        self.assertEqual(ui.sql("SELECT actor, action, target, result FROM audit_logs ORDER BY id"),
                         [("kim", "alert.acknowledge", str(ids["service_down"]), "ok"),
                          ("boss", "alert.acknowledge", str(ids["service_down"]), "already acknowledged")])
        self.assertEqual(json.loads(json.dumps(events[0]))["by"], "kim")
