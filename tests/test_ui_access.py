"""One test per cell of the route x role table (access.ACCESS), over real HTTP and PostgreSQL.

For every registered route and each of: no session, viewer, operator, admin, the route's
sample request must be answered as the table says: allowed -> one of the sample's expected
codes; not allowed -> 403; no session -> redirect to /login (pages) or 401 JSON (the rest).
Every state-changing route is also tried without its CSRF token (-> 403, nothing changed).

Adding a route? Add its sample to SAMPLES (placeholders: {defect}, {alert}, {user}, {rejected}, {dead}).
"""

from __future__ import annotations

import attrs
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.web.ui.access import ACCESS
from ccl.adapters.web.ui.app import declared_routes
from tests.support.ui import json_of, start_ui

ROLES = ("viewer", "operator", "admin")
ROUTES = declared_routes()


@attrs.frozen
class Sample:
    method: str
    path: str
    ok: frozenset = frozenset({200})
    json: dict | None = None
    form: dict | None = None


def S(method, path, *ok, json=None, form=None):  # noqa: N802 (reads like a table)
    return Sample(method, path, frozenset(ok or {200}), json, form)


SAMPLES: dict[str, Sample] = {
    "health": S("GET", "/health"),
    "static": S("GET", "/static/css/ccl.css"),
    "login": S("GET", "/login", 200, 303),          # 303: already logged in
    "login_submit": S("POST", "/login", 403, form={"username": "x", "password": "y"}),  # no login CSRF cookie
    "logout": S("POST", "/logout", 303),
    "whoami": S("GET", "/api/whoami"),
    "dashboard": S("GET", "/"),
    "system": S("GET", "/system"),
    "system_services": S("GET", "/api/system/services", 503),   # no orchestrator in these tests
    "system_service_action": S("POST", "/api/system/services/ui-service/restart", 503),
    "system_logs": S("GET", "/api/system/services/ui-service/logs?lines=5", 503),
    "system_logs_stream": S("GET", "/api/system/services/ui-service/logs/stream"),
    "alerts_list": S("GET", "/api/alerts?state=all"),
    "alert_ack": S("POST", "/api/alerts/{alert}/ack", json={}),
    "admin_users": S("GET", "/admin/users"),
    "admin_user_create": S("POST", "/admin/users", 200, form={"username": "new.user", "role": "viewer"}),
    "admin_user_update": S("POST", "/admin/users/{user}", 303, form={"role": "operator", "display_name": "T"}),
    "admin_user_reset": S("POST", "/admin/users/{user}/reset-password"),
    "admin_audit": S("GET", "/admin/audit?actor=x&page=1"),
    "admin_settings": S("GET", "/admin/settings"),
    "admin_settings_save": S("POST", "/admin/settings", 303, form={
        "defect_types": "scratch\ndent", "critical": "0.95", "high": "0.85", "medium": "0.6", "review": "0.5"}),
    "admin_quality": S("GET", "/admin/quality"),
    "rule_book_preview": S("POST", "/api/admin/rule-book/preview", json={"document": '{"grades": ["A"], "rules": []}'}),
    "rule_book_save": S("POST", "/api/admin/rule-book", json={"document": '{"grades": ["A"], "rules": []}'}),
    "rule_books": S("GET", "/api/admin/rule-books"),
    "roll_save": S("POST", "/admin/quality/rolls", 303, form={"name": "R1", "diameter_mm": "600"}),
    "roll_delete": S("POST", "/admin/quality/rolls/999999/delete", 404),
    "alarm_rules_save": S("POST", "/admin/quality/alarms", 303, form={"rules": "[]"}),
    "coil_grade_override": S("POST", "/api/coils/C1/grade", 404, json={
        "grade": "B", "disposition": "hold", "reason": "고객 요청"}),
    "defect_review": S("POST", "/api/defects/{defect}/review", json={"action": "confirm", "comment": "봤음"}),
    "defect_reviews": S("GET", "/api/defects/{defect}/reviews"),
    "defect_types": S("GET", "/api/defect-types"),
    # data pages (tests/test_ui_data_pages.py tests their content)
    "dashboard_data": S("GET", "/api/dashboard?part=today"),
    "live_events": S("GET", "/api/events?once=1"),
    "coils": S("GET", "/coils"),
    "coils_data": S("GET", "/api/coils?coil=C1"),
    "coils_csv": S("GET", "/coils.csv"),
    "coil_detail": S("GET", "/coils/C1"),
    "coil_data": S("GET", "/api/coils/C1"),
    "image_file": S("GET", "/images/999999", 404),
    "image_thumb": S("GET", "/images/999999/thumb", 404),
    "image_info": S("GET", "/api/images/999999", 404),
    "tracking": S("GET", "/tracking"),
    "tracking_data": S("GET", "/api/tracking?from=2026-03-01&to=2026-03-02"),
    "statistics": S("GET", "/statistics"),
    "statistics_data": S("GET", "/api/statistics"),
    "models": S("GET", "/models"),
    "models_data": S("GET", "/api/models"),
    "model_deploy": S("POST", "/api/models/999999/deploy", 404, json={}),
    "model_register": S("POST", "/models", 303, form={"name": "access-model", "version": "1"}),
    "models_accuracy": S("GET", "/api/models/accuracy"),
    "training_export": S("GET", "/models/training-export.zip"),
    "coil_report_pdf": S("GET", "/coils/C1/report.pdf"),
    "coil_defects_csv": S("GET", "/coils/C1/defects.csv"),
    # 통신 진단 (tests/test_ui_diagnostics.py tests their content)
    "diagnostics": S("GET", "/diagnostics", 303),
    "rejected_telegrams": S("GET", "/diagnostics/rejected?tc=4003"),
    "rejected_telegram": S("GET", "/diagnostics/rejected/{rejected}"),
    "dead_letters": S("GET", "/diagnostics/dead-letters?view=dead"),
    "dead_letter": S("GET", "/diagnostics/dead-letters/{dead}"),
    "dead_letter_resend": S("POST", "/diagnostics/dead-letters/{dead}/resend", 303, form={}),
}


async def seeded(testcase):
    ui = await start_ui(testcase)
    (alert,) = ui.sql("INSERT INTO alerts (rule, subject, message) VALUES ('service_down', 'ui-service', 'down')"
                      " RETURNING id")[0]
    (defect,) = ui.sql(
        "INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time)"
        " VALUES ('C1', 'scratch', 0.9, 'high', now()) RETURNING id")[0]
    target = ui.add_user("target.user", "viewer", session=False)
    (rejected,) = ui.sql("INSERT INTO rejected_telegrams (received_at, result_code, reason, raw)"
                         " VALUES (now(), '13', 'header unreadable', '\\x00') RETURNING id")[0]
    (dead,) = ui.sql("INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw, state)"
                     " VALUES ('speed', 'tc_4003_speed', 1, '4003', 1, '\\x00', 'refused') RETURNING id")[0]
    return ui, {"alert": alert, "defect": defect, "user": target.user_id, "rejected": rejected, "dead": dead}


async def send(ui, sample: Sample, login, places, csrf=True):
    path = sample.path.format(**places)
    if sample.form is not None:
        data = dict(sample.form)
        if login is not None and csrf:
            data["csrf_token"] = login.csrf
        return await ui.request(sample.method, path, login, data=data, csrf=False)
    return await ui.request(sample.method, path, login, json=sample.json, csrf=csrf)


def cell_test(name: str, who: str | None):
    rule = ACCESS[name]

    async def run(self):
        sample = SAMPLES[name]
        ui, places = await seeded(self)
        login = ui.add_user(f"u.{who}", who) if who else None
        response, body = await send(ui, sample, login, places)
        if rule.roles is None or (who is not None and who in rule.roles):
            self.assertIn(response.code, sample.ok, body[:500])
        elif who is None:
            if rule.kind == "page":
                self.assertEqual(response.code, 303)
                self.assertTrue(response.headers.getRawHeaders(b"location")[0].startswith(b"/login"))
            else:
                self.assertEqual(response.code, 401)
                self.assertEqual(json_of(body)["error"], "login required")
        else:
            self.assertEqual(response.code, 403, body[:500])
            if rule.kind != "page":
                self.assertIn("error", json_of(body))

    def test(self):
        return defer.ensureDeferred(run(self))

    test.__name__ = f"test_{name}__{who or 'no_session'}"
    test.__doc__ = (f"{name}: {who or 'no session'} gets what ACCESS allows it"
                    " (the answer, or a login redirect, 401 or 403).")
    return test


def csrf_test(name: str):
    rule = ACCESS[name]
    who = sorted(rule.roles)[0]

    async def run(self):
        ui, places = await seeded(self)
        login = ui.add_user(f"u.{who}", who)
        before = ui.sql("SELECT count(*) FROM audit_logs")
        response, body = await send(ui, SAMPLES[name], login, places, csrf=False)
        self.assertEqual(response.code, 403)
        self.assertIn("CSRF".encode(), body)
        self.assertEqual(ui.sql("SELECT count(*) FROM audit_logs"), before)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(1,)])
        self.assertEqual(ui.sql("SELECT review_status FROM defect_detections"), [("new",)])
        self.assertEqual(ui.sql("SELECT acknowledged_at FROM alerts"), [(None,)])
        self.assertEqual(ui.sql("SELECT state FROM forward_outbox"), [("refused",)])

    def test(self):
        return defer.ensureDeferred(run(self))

    test.__name__ = f"test_{name}__without_csrf_refused"
    test.__doc__ = f"{name} without the CSRF token is refused with 403 and changes nothing."
    return test


class RouteTableTests(TestCase):
    def test_every_registered_route_is_in_the_table_and_has_a_sample(self):
        """Every registered route has an access rule and a sample request."""
        registered = {r.name for r in ROUTES}
        self.assertEqual(sorted(registered - set(SAMPLES)), [])
        self.assertEqual(sorted(registered - set(ACCESS)), [])

    def test_every_table_entry_is_registered(self):
        """Every access rule names a registered route."""
        self.assertEqual(sorted(set(ACCESS) - {r.name for r in ROUTES}), [])


class RouteAccessTests(TestCase):
    """Filled below: test_<route>__<role|no_session> and test_<route>__without_csrf_refused."""


for _route in ROUTES:
    if _route.name not in SAMPLES:
        continue
    for _who in (None, *ROLES):
        _test = cell_test(_route.name, _who)
        setattr(RouteAccessTests, _test.__name__, _test)
    _rule = ACCESS[_route.name]
    if _rule.roles is not None and SAMPLES[_route.name].method not in ("GET", "HEAD"):
        _test = csrf_test(_route.name)
        setattr(RouteAccessTests, _test.__name__, _test)
