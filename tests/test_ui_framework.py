"""The UI framework: login, logout, sessions, cookies, CSRF, lock-out, expiry, audit rows."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import TestCase

from tests.support.ui import json_of, set_cookies, start_ui


def d(coroutine_function):
    """Run an async test method as a Deferred (trial waits for it)."""
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


async def login_form(ui):
    """GET /login: the pre-session CSRF cookie and the form's hidden value."""
    response, body = await ui.get("/login")
    cookies = set_cookies(response)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
    return cookies["ccl_login_csrf"]["value"], token


async def submit_login(ui, username, password, **extra):
    cookie, token = await login_form(ui)
    data = {"username": username, "password": password, "csrf_token": token}
    data.update(extra)
    return await ui.post("/login", data=data, cookies={"ccl_login_csrf": cookie})


class LoginTests(TestCase):
    @d
    async def test_login_sets_a_strict_httponly_cookie_and_stores_only_a_digest(self):
        """Login sets an HttpOnly, SameSite=Strict cookie, stores only the token's digest, and goes to 'next'."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator", session=False)
        response, _ = await submit_login(ui, "kim", user.password, next="/system")
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/system"])
        cookie = set_cookies(response)["ccl_session"]
        self.assertTrue(cookie["httponly"])
        self.assertEqual(cookie["samesite"].lower(), "strict")
        self.assertEqual(cookie["path"], "/")
        self.assertNotIn("secure", cookie)  # plain HTTP here; under TLS it is set
        stored = ui.sql("SELECT token_hash, csrf_token FROM sessions")
        self.assertEqual(len(stored), 1)
        self.assertNotEqual(bytes(stored[0][0]), cookie["value"].encode())
        self.assertEqual(len(bytes(stored[0][0])), 32)
        # The cookie opens pages.
        response, body = await ui.get("/api/whoami", cookies={"ccl_session": cookie["value"]})
        self.assertEqual(response.code, 200)
        self.assertEqual(json_of(body)["username"], "kim")
        self.assertEqual(json_of(body)["csrf_token"], stored[0][1])
        audit = ui.sql("SELECT actor, action, target, result, client_address FROM audit_logs")
        self.assertEqual(audit, [("kim", "ui.login", "kim", "ok", "127.0.0.1")])

    @d
    async def test_secure_cookie_when_configured_always(self):
        """With secure_cookie = always the session cookie is Secure."""
        ui = await start_ui(self, env={"CCL_UI_SECURE_COOKIE": "always"})
        user = ui.add_user("kim", "viewer", session=False)
        response, _ = await submit_login(ui, "kim", user.password)
        self.assertTrue(set_cookies(response)["ccl_session"]["secure"])

    @d
    async def test_wrong_password_and_unknown_user_are_refused_and_audited(self):
        """A wrong password and an unknown user get the same 401 message, no cookie, and are audited."""
        ui = await start_ui(self)
        ui.add_user("kim", "operator", session=False)
        response, body = await submit_login(ui, "kim", "wrong password!")
        self.assertEqual(response.code, 401)
        self.assertIn("아이디 또는 비밀번호가 올바르지 않습니다.", body.decode())
        self.assertNotIn("ccl_session", set_cookies(response))
        response, body = await submit_login(ui, "nobody", "whatever password")
        self.assertEqual(response.code, 401)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(0,)])
        self.assertEqual(ui.sql("SELECT actor, action, result FROM audit_logs ORDER BY id"),
                         [("kim", "ui.login", "failure"), ("nobody", "ui.login", "failure")])

    @d
    async def test_login_without_its_csrf_value_is_refused(self):
        """A login without its CSRF cookie and form value is refused with 403."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator", session=False)
        response, _ = await ui.post("/login", data={"username": "kim", "password": user.password})
        self.assertEqual(response.code, 403)
        cookie, token = await login_form(ui)
        response, _ = await ui.post("/login", data={"username": "kim", "password": user.password, "csrf_token": token})
        self.assertEqual(response.code, 403)  # form value without its cookie
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(0,)])

    @d
    async def test_lockout_after_repeated_failures(self):
        """Repeated failures lock the account, even against the right password, until the lock ends."""
        ui = await start_ui(self, env={"CCL_UI_LOCKOUT_FAILURES": "3"})
        user = ui.add_user("kim", "operator", session=False)
        for _ in range(2):
            response, _ = await submit_login(ui, "kim", "wrong password!")
            self.assertEqual(response.code, 401)
        response, body = await submit_login(ui, "kim", "wrong password!")
        self.assertIn("잠겼습니다", body.decode())
        # Even the right password is refused while locked.
        response, body = await submit_login(ui, "kim", user.password)
        self.assertEqual(response.code, 401)
        self.assertIn("잠겼습니다", body.decode())
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(0,)])
        self.assertEqual([r[0] for r in ui.sql("SELECT result FROM audit_logs ORDER BY id")],
                         ["failure", "failure", "locked", "locked"])
        # The lock ends (moved into the past here), then the right password works and resets the count.
        ui.sql("UPDATE users SET locked_until = now() - interval '1 second'")
        response, _ = await submit_login(ui, "kim", user.password)
        self.assertEqual(response.code, 303)
        self.assertEqual(ui.sql("SELECT failed_logins, locked_until FROM users"), [(0, None)])

    @d
    async def test_disabled_user_cannot_log_in_and_its_sessions_stop_working(self):
        """A disabled user cannot log in, and its sessions stop working."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator")
        ui.sql("UPDATE users SET disabled = true")
        response, _ = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 401)
        response, body = await submit_login(ui, "kim", user.password)
        self.assertEqual(response.code, 401)
        self.assertIn("사용이 중지된 계정입니다.", body.decode())

    @d
    async def test_open_redirect_refused(self):
        """A 'next' pointing off the site sends to / instead."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator", session=False)
        response, _ = await submit_login(ui, "kim", user.password, next="//evil.example/x")
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/"])


class SessionTests(TestCase):
    @d
    async def test_idle_expiry(self):
        """A session idle longer than the idle limit is refused."""
        ui = await start_ui(self, env={"CCL_UI_SESSION_IDLE_MINUTES": "5"})
        user = ui.add_user("kim", "viewer")
        response, _ = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 200)
        ui.sql("UPDATE sessions SET last_seen_at = now() - interval '6 minutes'")
        response, body = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 401)
        self.assertEqual(json_of(body)["error"], "login required")

    @d
    async def test_use_extends_the_idle_time(self):
        """Using a session extends its idle time."""
        ui = await start_ui(self, env={"CCL_UI_SESSION_IDLE_MINUTES": "5"})
        user = ui.add_user("kim", "viewer")
        ui.sql("UPDATE sessions SET last_seen_at = now() - interval '4 minutes'")
        response, _ = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 200)
        (recent,) = ui.sql("SELECT last_seen_at > now() - interval '1 minute' FROM sessions")[0]
        self.assertTrue(recent)

    @d
    async def test_absolute_expiry(self):
        """A session past its absolute expiry is refused."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "viewer")
        ui.sql("UPDATE sessions SET expires_at = now() - interval '1 second'")
        response, _ = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 401)

    @d
    async def test_absolute_expiry_set_from_config_at_login(self):
        """A new session expires session_max_hours after login."""
        ui = await start_ui(self, env={"CCL_UI_SESSION_MAX_HOURS": "2"})
        user = ui.add_user("kim", "viewer", session=False)
        await submit_login(ui, "kim", user.password)
        (hours,) = ui.sql("SELECT round(extract(epoch FROM expires_at - created_at) / 3600) FROM sessions")[0]
        self.assertEqual(hours, 2)

    @d
    async def test_page_without_session_redirects_to_login_with_next(self):
        """A page without a session redirects to the login with the page as 'next'."""
        ui = await start_ui(self)
        response, _ = await ui.get("/?x=1")
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/login?next=%2F%3Fx%3D1"])

    @d
    async def test_logout_needs_csrf_ends_the_session_and_is_audited(self):
        """Logout needs the CSRF token, ends the session and is audited."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator")
        response, _ = await ui.post("/logout", user, csrf=False)
        self.assertEqual(response.code, 403)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(1,)])
        response, _ = await ui.post("/logout", user, data={"csrf_token": user.csrf})
        self.assertEqual(response.code, 303)
        self.assertEqual(set_cookies(response)["ccl_session"]["max-age"], "0")
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(0,)])
        response, _ = await ui.get("/api/whoami", user)
        self.assertEqual(response.code, 401)
        self.assertEqual(ui.sql("SELECT actor, action, result FROM audit_logs"), [("kim", "ui.logout", "ok")])

    @d
    async def test_wrong_csrf_header_is_refused_with_json(self):
        """A wrong X-CSRF-Token header is refused with 403 as JSON, changing nothing."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator")
        response, body = await ui.post("/logout", user, csrf=False, headers={"X-CSRF-Token": "not-the-token"})
        self.assertEqual(response.code, 403)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(1,)])


class FrameworkTests(TestCase):
    @d
    async def test_health(self):
        """/health answers ok without a session."""
        ui = await start_ui(self)
        response, body = await ui.get("/health")
        self.assertEqual(response.code, 200)
        self.assertEqual(json_of(body)["status"], "ok")

    @d
    async def test_static_files_served_without_session_and_without_listing(self):
        """Static files are served without a session; no directory listing, no path outside."""
        ui = await start_ui(self)
        response, body = await ui.get("/static/js/ccl.js")
        self.assertEqual(response.code, 200)
        self.assertIn(b"X-CSRF-Token", body)
        response, _ = await ui.get("/static/js/")
        self.assertEqual(response.code, 403)
        response, _ = await ui.get("/static/../../ccl/config.py")
        self.assertNotEqual(response.code, 200)

    @d
    async def test_korean_first_and_english_toggle_remembered(self):
        """Pages are in Korean first; ?lang=en switches to English and is remembered."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "admin")
        response, body = await ui.get("/", user)
        text = body.decode()
        for label in ("실시간 모니터링", "로그아웃"):
            self.assertIn(label, text)
        response, body = await ui.get("/?lang=en", user)
        self.assertIn("Log out", body.decode())
        self.assertEqual(set_cookies(response)["ccl_lang"]["value"], "en")
        response, body = await ui.get("/", user, cookies={"ccl_lang": "en"})
        self.assertIn("Live monitoring", body.decode())

    @d
    async def test_security_headers(self):
        """Pages carry a Content-Security-Policy allowing only the site's own scripts, and X-Frame-Options DENY."""
        ui = await start_ui(self)
        response, _ = await ui.get("/login")
        self.assertIn(b"script-src 'self'", response.headers.getRawHeaders(b"content-security-policy")[0])
        self.assertEqual(response.headers.getRawHeaders(b"x-frame-options"), [b"DENY"])

    @d
    async def test_oversized_body_refused(self):
        """A body announced over the limit is refused with 413 before it is sent."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator")
        host, port = ui.base.rsplit(":", 1)[0][len("http://"):], int(ui.base.rsplit(":", 1)[1])

        def send_headers_only():
            # Announce 2 MiB and send none of it: the answer must come before the body.
            with socket.create_connection((host, port), timeout=10) as conn:
                conn.sendall(b"POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n"
                             b"Cookie: ccl_session=" + user.token.encode() + b"\r\n\r\n")
                return conn.recv(4096)

        answer = await threads.deferToThread(send_headers_only)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer)
        self.assertEqual(ui.sql("SELECT count(*) FROM sessions"), [(1,)])


class NavigationTests(TestCase):
    @d
    async def test_navigation_follows_the_role(self):
        """The navigation shows each role only the pages it may open."""
        ui = await start_ui(self)
        viewer = ui.add_user("lee", "viewer")
        response, body = await ui.get("/", viewer)
        self.assertEqual(response.code, 200)
        self.assertIn('href="/system"', body.decode())
        self.assertNotIn('href="/admin/users"', body.decode())
        admin = ui.add_user("park", "admin")
        response, body = await ui.get("/system", admin)
        text = body.decode()
        self.assertIn('href="/admin/users"', text)
        self.assertIn('<a href="/system" class="active" aria-current="page">시스템</a>', text)

    @d
    async def test_login_page_sends_a_logged_in_user_on(self):
        """The login page sends a logged-in user on to 'next'."""
        ui = await start_ui(self)
        response, _ = await ui.get("/login?next=/system", ui.add_user("lee", "viewer"))
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/system"])


class ProcessTests(TestCase):
    """twistd ccl-ui as a real process: starts, answers /health, refuses bad settings cleanly."""

    def _env(self, **extra):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k.startswith("CCL_TEST_")}
        env.update(PYTHONPATH=root, **extra)
        return env

    def test_bad_setting_stops_start_up_with_a_message(self):
        """A bad setting stops ccl-ui start-up with a message naming it, no traceback."""
        result = subprocess.run(
            [sys.executable, "-m", "twisted", "--log-file=-", "ccl-ui"], capture_output=True, text=True, timeout=60,
            env=self._env(CCL_DATABASE_DSN="host=127.0.0.1 dbname=x", CCL_UI_LOCKOUT_FAILURES="many"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("CCL_UI_LOCKOUT_FAILURES", result.stderr + result.stdout)
        self.assertNotIn("Traceback", result.stderr + result.stdout)

    @d
    async def test_serves_health(self):
        """ccl-ui run by twistd serves /health."""
        from ccl.adapters.storage.localdb import free_port
        from tests.support.database import fresh_database
        import treq

        dsn = fresh_database(self)
        port = free_port()
        log = open(self.mktemp(), "w+b")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [sys.executable, "-m", "twisted", "--log-file=-", "--log-format=text", "ccl-ui"], stdout=log,
            stderr=subprocess.STDOUT,
            env=self._env(CCL_DATABASE_DSN=dsn, CCL_UI_LISTEN=f"tcp:{port}:interface=127.0.0.1",
                          CCL_PATHS_VAR=self.mktemp()))
        self.addCleanup(lambda: (process.poll() is None and process.kill(), process.wait()))
        body = None
        for _ in range(200):
            try:
                response = await treq.get(f"http://127.0.0.1:{port}/health", persistent=False)
                body = await response.json()
                if body.get("status") == "ok":
                    break
            except Exception:
                pass
            await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(body, {"status": "ok", "service": "ui-service", "database": "ok"})
        process.terminate()
        # Twisted ends a process stopped by a signal with that signal, after a clean shutdown.
        self.assertIn(await threads.deferToThread(process.wait, 30), (0, -signal.SIGTERM))
        log.seek(0)
        self.assertIn(b"Main loop terminated.", log.read())


class UnknownPathTests(TestCase):
    @d
    async def test_unknown_paths_and_methods(self):
        """Unknown paths get 404 (JSON under /api, a Korean page otherwise); wrong methods 405."""
        ui = await start_ui(self)
        response, body = await ui.get("/api/nothing-here")
        self.assertEqual(response.code, 404)
        self.assertEqual(json_of(body), {"error": "not found"})
        response, body = await ui.get("/nothing-here")
        self.assertEqual(response.code, 404)
        self.assertIn("페이지를 찾을 수 없습니다.", body.decode())
        self.assertEqual(response.headers.getRawHeaders(b"x-frame-options"), [b"DENY"])
        response, body = await ui.request("DELETE", "/api/whoami")
        self.assertEqual(response.code, 405)

    @d
    async def test_next_is_only_a_local_path(self):
        """'next' is followed only when it is a local path."""
        ui = await start_ui(self)
        user = ui.add_user("kim", "operator", session=False)
        for evil in ("//evil.example/x", "/\\evil.example", "/\t/evil.example", "https://evil.example/"):
            response, _ = await submit_login(ui, "kim", user.password, next=evil)
            self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/"], evil)


class DatabaseOutageTests(TestCase):
    @d
    async def test_pages_say_the_database_is_away_and_recover_when_it_is_back(self):
        """With PostgreSQL away pages say so (503); they work again once it is back."""
        import psycopg2

        from tests.support.cluster import private_cluster

        cluster, dsn = private_cluster(self)
        ui = await start_ui(self, dsn=dsn)
        user = ui.add_user("kim", "admin")
        response, _ = await ui.get("/admin/users", user)
        self.assertEqual(response.code, 200)
        cluster.stop()
        response, body = await ui.get("/admin/users", user)
        self.assertEqual(response.code, 503)
        self.assertIn("데이터베이스에 연결할 수 없습니다", body.decode())
        response, body = await ui.get("/api/whoami", user)
        self.assertEqual((response.code, json_of(body)["error"]), (503, "database unavailable"))
        response, body = await ui.get("/health")
        self.assertEqual((response.code, json_of(body)["status"]), (200, "degraded"))
        cluster.start(fast=True)
        for _ in range(300):  # the pool reconnects in the background
            response, _ = await ui.get("/admin/users", user)
            if response.code == 200:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(response.code, 200)
        # Let every pooled connection finish reconnecting, so no reconnect timer outlives the test.
        for _ in range(300):
            if not any(c.detector.connectionIsDead for c in ui.db._pool.connections):
                break
            await ui.get("/api/whoami", user)
            await task.deferLater(reactor, 0.1, lambda: None)
        self.flushLoggedErrors(psycopg2.OperationalError)


class HousekeepingTests(TestCase):
    @d
    async def test_purge_removes_expired_and_idle_sessions_only(self):
        """The session purge removes expired and idle sessions only."""
        ui = await start_ui(self, env={"CCL_UI_SESSION_IDLE_MINUTES": "10"})
        for name in ("live", "idle", "old"):
            ui.add_user(name, "viewer")
        ui.sql("UPDATE sessions SET last_seen_at = now() - interval '11 minutes'"
               " WHERE user_id = (SELECT id FROM users WHERE username = 'idle')")
        ui.sql("UPDATE sessions SET expires_at = now() - interval '1 second'"
               " WHERE user_id = (SELECT id FROM users WHERE username = 'old')")
        await ui.ui.sessions.purge_expired()
        self.assertEqual(ui.sql("SELECT u.username FROM sessions s JOIN users u ON u.id = s.user_id"), [("live",)])


class LanguageLinkTests(TestCase):
    @d
    async def test_language_link_keeps_the_query(self):
        """The language link keeps the page's query."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        response, body = await ui.get("/admin/audit?actor=kim&page=2", admin)
        self.assertIn('href="/admin/audit?actor=kim&amp;page=2&amp;lang=en"', body.decode())
        response, body = await ui.get("/admin/audit?actor=kim&lang=en", admin)
        self.assertIn('href="/admin/audit?actor=kim&amp;lang=ko"', body.decode())
