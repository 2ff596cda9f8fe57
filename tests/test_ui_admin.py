"""관리: users (create, role, disable, reset password), the audit log, inspection settings."""

from __future__ import annotations

import re

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.domain import inspection_settings
from ccl.domain.accounts import verify_password
from tests.support.ui import start_ui
from tests.test_ui_framework import submit_login


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


def shown_password(body: bytes) -> str:
    return re.search(rb'<span class="secret">([^<]+)</span>', body).group(1).decode()


class UserTests(TestCase):
    @d
    async def test_create_shows_a_generated_password_once_that_works(self):
        """A new user's generated password is shown once (no-store), stored hashed, works for login; audited."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.post("/admin/users", admin, data={
            "username": "kim.op", "display_name": "김운영", "role": "operator", "csrf_token": admin.csrf}, csrf=False)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"cache-control"), [b"no-store"])
        password = shown_password(body)
        self.assertGreaterEqual(len(password), 16)
        stored, role, display = ui.sql("SELECT password_hash, role, display_name FROM users WHERE username = 'kim.op'")[0]
        self.assertNotIn(password, stored)
        self.assertTrue(verify_password(stored, password))
        self.assertEqual((role, display), ("operator", "김운영"))
        response, body = await ui.get("/admin/users", admin)
        self.assertNotIn(password.encode(), body)  # shown once only
        self.assertIn("김운영".encode(), body)
        response, _ = await submit_login(ui, "kim.op", password)
        self.assertEqual(response.code, 303)
        self.assertIn(("boss", "user.create", "kim.op", "ok"),
                      ui.sql("SELECT actor, action, target, result FROM audit_logs"))

    @d
    async def test_create_refuses_bad_names_roles_and_duplicates(self):
        """A bad user id, an unknown role or an existing name is refused and creates nothing."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        for form, code in (({"username": "bad name!", "role": "viewer"}, 400),
                           ({"username": "ok.name", "role": "superuser"}, 400),
                           ({"username": "boss", "role": "viewer"}, 409)):
            response, body = await ui.post("/admin/users", admin, data=dict(form, csrf_token=admin.csrf), csrf=False)
            self.assertEqual(response.code, code, form)
            self.assertNotIn(b'class="secret"', body)
        self.assertEqual(ui.sql("SELECT username, role FROM users"), [("boss", "admin")])

    @d
    async def test_change_role_and_disable_ends_the_sessions(self):
        """Disabling a user ends its sessions; a role change applies at once; both audited with before and after."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        kim = ui.add_user("kim", "operator")
        response, _ = await ui.post(f"/admin/users/{kim.user_id}", admin, csrf=False, data={
            "role": "viewer", "display_name": "Kim", "disabled": "on", "csrf_token": admin.csrf})
        self.assertEqual(response.code, 303)
        self.assertEqual(ui.sql("SELECT role, disabled FROM users WHERE username = 'kim'"), [("viewer", True)])
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions WHERE user_id = %s", (kim.user_id,)), [(0,)])
        response, _ = await ui.get("/api/whoami", kim)
        self.assertEqual(response.code, 401)
        (details,) = ui.sql("SELECT details FROM audit_logs WHERE action = 'user.update'")[0]
        self.assertEqual(details, {"role": ["operator", "viewer"], "disabled": [False, True]})
        # Enable again, role change applies to the next request of a live session at once.
        response, _ = await ui.post(f"/admin/users/{kim.user_id}", admin, csrf=False, data={
            "role": "viewer", "csrf_token": admin.csrf})
        self.assertEqual(ui.sql("SELECT disabled FROM users WHERE username = 'kim'"), [(False,)])

    @d
    async def test_the_last_admin_cannot_demote_or_disable_itself(self):
        """The last admin cannot demote or disable itself; with a second admin it can."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        for form in ({"role": "viewer"}, {"role": "admin", "disabled": "on"}):
            response, body = await ui.post(f"/admin/users/{admin.user_id}", admin, csrf=False,
                                           data=dict(form, csrf_token=admin.csrf))
            self.assertEqual(response.code, 409)
        self.assertEqual(ui.sql("SELECT role, disabled FROM users"), [("admin", False)])
        # With a second admin it is allowed.
        ui.add_user("deputy", "admin", session=False)
        response, _ = await ui.post(f"/admin/users/{admin.user_id}", admin, csrf=False,
                                    data={"role": "operator", "csrf_token": admin.csrf})
        self.assertEqual(response.code, 303)
        response, _ = await ui.get("/admin/users", admin)
        self.assertEqual(response.code, 403)  # now an operator

    @d
    async def test_reset_password_ends_sessions_clears_lock_and_works(self):
        """A password reset ends the sessions, clears the lock, shows a working new password; audited."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        kim = ui.add_user("kim", "operator")
        ui.sql("UPDATE users SET failed_logins = 3, locked_until = now() + interval '1 hour' WHERE username = 'kim'")
        response, body = await ui.post(f"/admin/users/{kim.user_id}/reset-password", admin, csrf=False,
                                       data={"csrf_token": admin.csrf})
        self.assertEqual(response.code, 200)
        password = shown_password(body)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions WHERE user_id = %s", (kim.user_id,)), [(0,)])
        response, _ = await submit_login(ui, "kim", kim.password)
        self.assertEqual(response.code, 401)
        response, _ = await submit_login(ui, "kim", password)
        self.assertEqual(response.code, 303)
        self.assertIn(("boss", "user.reset_password", "kim", "ok"),
                      ui.sql("SELECT actor, action, target, result FROM audit_logs"))
        response, _ = await ui.post("/admin/users/999999/reset-password", admin, csrf=False,
                                    data={"csrf_token": admin.csrf})
        self.assertEqual(response.code, 404)


class AuditLogTests(TestCase):
    @d
    async def test_filters_and_pages(self):
        """The audit log pages by 50 and filters by actor, action prefix and plant-time dates."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        ui.sql("INSERT INTO audit_logs (at, actor, action, target, result)"
               " SELECT timestamptz '2026-03-01 09:00+09' + n * interval '1 hour', CASE WHEN n %% 2 = 0 THEN 'kim'"
               " ELSE 'lee' END, CASE WHEN n %% 3 = 0 THEN 'user.create' ELSE 'ui.login' END, 't' || n, 'ok'"
               " FROM generate_series(0, 119) AS n")
        response, body = await ui.get("/admin/audit", admin)
        self.assertEqual(response.code, 200)
        self.assertEqual(body.count(b"<tr><td>"), 50)
        self.assertIn(b'rel="next"', body)
        response, body = await ui.get("/admin/audit?page=3", admin)
        self.assertEqual(body.count(b"<tr><td>"), 20)
        self.assertNotIn(b'rel="next"', body)
        # actor kim and action prefix "user.": n even and divisible by 3 -> n % 6 == 0 -> 20 rows
        response, body = await ui.get("/admin/audit?actor=kim&action=user.", admin)
        self.assertEqual(body.count(b"<tr><td>"), 20)
        self.assertNotIn(b"<td>lee</td>", body)
        # A date range in plant time: 2026-03-02 holds hours 15..38 -> 24 rows.
        response, body = await ui.get("/admin/audit?from=2026-03-02&to=2026-03-02", admin)
        self.assertEqual(body.count(b"<tr><td>"), 24)
        self.assertIn(b">t15<", body)
        self.assertIn(b">t38<", body)
        response, _ = await ui.get("/admin/audit?from=yesterday", admin)
        self.assertEqual(response.code, 400)
        # A like-pattern in the filter is taken literally.
        response, body = await ui.get("/admin/audit?action=%25", admin)
        self.assertEqual(body.count(b"<tr><td>"), 0)


class SettingsTests(TestCase):
    @d
    async def test_save_valid_settings_audited_with_before_and_after(self):
        """Valid inspection settings are stored and audited with before and after."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.get("/admin/settings", admin)
        self.assertIn(b"coating_defect", body)
        response, _ = await ui.post("/admin/settings", admin, csrf=False, data={
            "defect_types": "scratch\ndent\n\n얼룩", "critical": "0.9", "high": "0.8", "medium": "0.5", "review": "0.4",
            "csrf_token": admin.csrf})
        self.assertEqual(response.code, 303)
        stored = dict(ui.sql("SELECT key, value FROM system_settings"))
        self.assertEqual(stored["defect_types"], ["scratch", "dent", "얼룩"])
        self.assertEqual(stored["severity_thresholds"], {"critical": 0.9, "high": 0.8, "medium": 0.5})
        self.assertEqual(stored["review_threshold"], 0.4)
        self.assertEqual(ui.sql("SELECT DISTINCT updated_by FROM system_settings WHERE key IN"
                                " ('defect_types', 'severity_thresholds', 'review_threshold')"), [("boss",)])
        (details,) = ui.sql("SELECT details FROM audit_logs WHERE action = 'settings.update'")[0]
        self.assertEqual(details["before"]["review_threshold"], 0.5)
        self.assertEqual(details["after"]["review_threshold"], 0.4)

    @d
    async def test_invalid_settings_refused_and_nothing_changed(self):
        """Invalid settings are refused with the reasons; nothing is stored or audited."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        before = ui.sql("SELECT key, value FROM system_settings ORDER BY key")
        response, body = await ui.post("/admin/settings", admin, csrf=False, data={
            "defect_types": "scratch", "critical": "0.5", "high": "0.8", "medium": "0.6", "review": "2",
            "csrf_token": admin.csrf})
        self.assertEqual(response.code, 400)
        self.assertIn(b"medium &lt; high &lt; critical", body)
        self.assertIn(b"review", body)
        self.assertEqual(ui.sql("SELECT key, value FROM system_settings ORDER BY key"), before)
        self.assertEqual(ui.sql("SELECT count(*) FROM audit_logs"), [(0,)])


class SettingsRuleTests(TestCase):
    def test_rules(self):
        """Settings need distinct one-word defect types, medium < high < critical, and a review threshold in 0..1."""
        ok = inspection_settings.validate("a, b\nc", "1", "0.8", "0.1", "0")
        self.assertEqual(ok.defect_types, ("a", "b", "c"))
        for args, field in ((("", "0.9", "0.8", "0.6", "0.5"), "defect_types"),
                            (("a\na", "0.9", "0.8", "0.6", "0.5"), "defect_types"),
                            (("a b", "0.9", "0.8", "0.6", "0.5"), "defect_types"),
                            (("a", "x", "0.8", "0.6", "0.5"), "critical"),
                            (("a", "0.9", "0.9", "0.6", "0.5"), "thresholds"),
                            (("a", "0.9", "0.8", "0", "0.5"), "thresholds"),
                            (("a", "0.9", "0.8", "0.6", "-0.1"), "review")):
            with self.assertRaises(inspection_settings.SettingsError) as caught:
                inspection_settings.validate(*args)
            self.assertIn(field, caught.exception.errors, args)
