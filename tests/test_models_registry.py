"""Registering AI models: the admin form of the AI 모델 page over real HTTP and PostgreSQL, and
``ccl model add|list`` as a real subprocess. Who may post the form: tests/test_ui_access.py."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support.database import fresh_database, query
from tests.support.ui import start_ui
from tests.test_cli_create_user import run_cli


def run(coroutine_function):
    def test(self):
        return defer.ensureDeferred(coroutine_function(self))

    test.__name__, test.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return test


async def post_form(ui, login, form):
    return await ui.post("/models", login, data={**form, "csrf_token": login.csrf}, csrf=False)


class RegisterFormTests(TestCase):
    @run
    async def test_admin_registers_a_model_audited_and_listed(self):
        """An admin's form adds the model (not deployed), audited with who and what; the page lists its id."""
        ui = await start_ui(self)
        admin = ui.add_user("admin.park", "admin")
        response, _ = await post_form(ui, admin, {"name": " yolo-ccl ", "version": "v9", "description": "2026-12 재학습"})
        self.assertEqual(response.code, 303)
        [(model_id, name, version, description, deployed, by)] = ui.sql(
            "SELECT id, name, version, description, deployed, registered_by FROM ai_models")
        self.assertEqual((name, version, description, deployed, by), ("yolo-ccl", "v9", "2026-12 재학습", False, "admin.park"))
        self.assertEqual(response.headers.getRawHeaders(b"location"), [f"/models?registered={model_id}".encode()])
        [(actor, action, target, result, details)] = ui.sql(
            "SELECT actor, action, target, result, details FROM audit_logs WHERE action = 'model.register'")
        self.assertEqual((actor, action, target, result), ("admin.park", "model.register", "yolo-ccl v9", "ok"))
        self.assertEqual(details["id"], model_id)
        response, body = await ui.get(f"/models?registered={model_id}", admin)
        self.assertEqual(response.code, 200)
        self.assertIn("모델을 등록했습니다".encode(), body)
        self.assertIn("2026-12 재학습".encode(), body)
        viewer = ui.add_user("viewer.kim", "viewer")
        _, body = await ui.get("/models", viewer)
        self.assertNotIn(b'method="post" action="/models"', body)  # the form is for admins only

    @run
    async def test_duplicate_refused_with_409_audited_and_nothing_changed(self):
        """Registering a name and version again answers 409 naming the existing id, audited as 'exists'."""
        ui = await start_ui(self)
        admin = ui.add_user("admin.park", "admin")
        await post_form(ui, admin, {"name": "yolo-ccl", "version": "v9", "description": "first"})
        response, body = await post_form(ui, admin, {"name": "yolo-ccl", "version": "v9", "description": "second"})
        self.assertEqual(response.code, 409)
        [(model_id, description)] = ui.sql("SELECT id, description FROM ai_models")
        self.assertEqual(description, "first")
        self.assertIn(f"id {model_id}".encode(), body)
        self.assertEqual(ui.sql("SELECT result FROM audit_logs WHERE action = 'model.register' ORDER BY id"),
                         [("ok",), ("exists",)])

    @run
    async def test_bad_input_is_400_with_the_reason_and_stores_nothing(self):
        """A bad name, an empty version or a long description answers 400 with the reason; no row is written."""
        ui = await start_ui(self)
        admin = ui.add_user("admin.park", "admin")
        for form, reason in [({"name": "../etc", "version": "1"}, "model name"),
                             ({"name": "yolo", "version": ""}, "version"),
                             ({"name": "yolo", "version": "1", "description": "x" * 501}, "description")]:
            response, body = await post_form(ui, admin, form)
            self.assertEqual(response.code, 400, form)
            self.assertIn(reason.encode(), body)
        self.assertEqual(ui.sql("SELECT count(*) FROM ai_models"), [(0,)])

    @run
    async def test_form_without_csrf_token_is_refused(self):
        """The form without the session's CSRF token is refused (403) and registers nothing."""
        ui = await start_ui(self)
        admin = ui.add_user("admin.park", "admin")
        response, _ = await ui.post("/models", admin, data={"name": "yolo", "version": "1"}, csrf=False)
        self.assertEqual(response.code, 403)
        self.assertEqual(ui.sql("SELECT count(*) FROM ai_models"), [(0,)])


class ModelCommandTests(SynchronousTestCase):
    def setUp(self):
        self.dsn = fresh_database(self)

    def test_add_registers_audits_with_the_os_user_and_list_shows_it(self):
        """ccl model add prints the new id, audits as cli:<os user>; ccl model list shows it."""
        import getpass

        result = run_cli(["model", "--dsn", self.dsn, "add", "yolo-ccl", "v9", "--description", "재학습"])
        self.assertEqual(result.returncode, 0, result.stderr)
        [(model_id, name, version, description, by)] = query(
            self.dsn, "SELECT id, name, version, description, registered_by FROM ai_models")
        self.assertIn(f"model id {model_id}", result.stdout)
        self.assertEqual((name, version, description, by), ("yolo-ccl", "v9", "재학습", f"cli:{getpass.getuser()}"))
        [(actor, target, outcome, details)] = query(
            self.dsn, "SELECT actor, target, result, details FROM audit_logs WHERE action = 'model.register'")
        self.assertEqual((actor, target, outcome), (f"cli:{getpass.getuser()}", "yolo-ccl v9", "ok"))
        self.assertEqual(details["id"], model_id)
        listed = run_cli(["model", "--dsn", self.dsn, "list"])
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(f"{model_id}  yolo-ccl v9", listed.stdout)

    def test_duplicate_and_bad_input_get_messages_and_change_nothing(self):
        """A duplicate exits 1 naming the existing id; a bad name exits 2 with the rule; no traceback."""
        run_cli(["model", "--dsn", self.dsn, "add", "yolo-ccl", "v9"])
        again = run_cli(["model", "--dsn", self.dsn, "add", "yolo-ccl", "v9"])
        self.assertEqual(again.returncode, 1)
        self.assertIn("registered already", again.stderr)
        bad = run_cli(["model", "--dsn", self.dsn, "add", "bad name", "v1"])
        self.assertEqual(bad.returncode, 2)
        self.assertIn("model name must be", bad.stderr)
        for result in (again, bad):
            self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM ai_models"), [(1,)])
        self.assertEqual(json.dumps(query(self.dsn, "SELECT result FROM audit_logs ORDER BY id")),
                         json.dumps([["ok"], ["exists"]]))

    def test_unreachable_database_is_a_message(self):
        """With no database to reach, ccl model list says so and exits 1."""
        result = run_cli(["model", "--dsn", "host=127.0.0.1 port=9 dbname=none connect_timeout=1", "--wait", "2", "list"])
        self.assertEqual(result.returncode, 1)
        self.assertIn("not reachable", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
