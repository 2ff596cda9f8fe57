"""How the UI's long answers end: an event stream when its login session ends, a CSV export
when the database fails half-way (real UI over real HTTP, real PostgreSQL, real orchestrator API)."""

from __future__ import annotations

import datetime
import zoneinfo

import psycopg2
from twisted.internet import defer, protocol, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers

from tests.support.fake_orchestrator import FakeOrchestrator
from tests.support.ui import start_ui
from tests.support.waiting import wait_for

#: The present of the UI under test (time is an input).
NOW = datetime.datetime(2026, 11, 27, 10, 15, tzinfo=zoneinfo.ZoneInfo("Asia/Seoul"))
#: Checked this often, an ended session closes its stream within a fraction of a second.
FAST_CHECKS = {"CCL_UI_STREAM_SESSION_CHECK_SECONDS": "0.1"}
#: More coils than several chunks of the export's server-side cursor (2,000 rows each).
MANY_COILS = 10_000


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))

    run.__name__ = coroutine_function.__name__
    run.__doc__ = coroutine_function.__doc__
    return run


class _Body(protocol.Protocol):
    """Collects a response body as it arrives; ``on_data`` sees every piece."""

    def __init__(self, on_data=None):
        self.data = b""
        self.ended: defer.Deferred = defer.Deferred()
        self.reason = None
        self.on_data = on_data

    def dataReceived(self, data):  # noqa: N802 (twisted's name)
        self.data += data
        if self.on_data is not None:
            self.on_data(self)

    def connectionLost(self, reason):  # noqa: N802
        self.reason = reason
        self.ended.callback(None)


async def _open(ui, path: str, login, on_data=None) -> tuple[object, _Body]:
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    response = await agent.request(b"GET", (ui.base + path).encode(),
                                   Headers({b"cookie": [f"ccl_session={login.token}".encode()]}))
    body = _Body(on_data)
    response.deliverBody(body)
    return response, body


class StreamSessionTests(TestCase):
    @d
    async def test_log_stream_closes_when_its_session_expires(self):
        """A service's live log stays open while the session lives and is closed (with an
        error event, and the relay to the orchestrator let go) once the session has expired."""
        fake = FakeOrchestrator("s3cret-token")
        ui = await start_ui(self, orchestrator_url=fake.start(self), env=FAST_CHECKS, now=NOW)
        (ui.var / "orchestrator.token").write_text("s3cret-token\n")
        operator = ui.add_user("kim", "operator")
        response, body = await _open(ui, "/api/system/services/ui-service/logs/stream", operator)
        self.assertEqual(response.code, 200)
        await wait_for(lambda: b"data: line 300\n\n" in body.data, "the log's last line")
        fake.push("after some checks")  # pushed after the stream ran a while: still relayed
        await wait_for(lambda: b"data: after some checks\n\n" in body.data, "a new line")
        self.assertFalse(body.ended.called)

        ui.sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = %s", (operator.user_id,))
        await wait_for(lambda: body.ended.called, "the stream to close")
        self.assertTrue(body.data.endswith(b'event: error\ndata: {"error": "session ended", "details": "log in again"}\n\n'),
                        body.data[-200:])
        self.assertTrue(body.reason.check(ResponseDone), body.reason)  # a clean end of the response
        await wait_for(lambda: not fake.followers, "the orchestrator relay to close")

    @d
    async def test_an_open_stream_keeps_no_idle_session_alive(self):
        """The stream's session checks are not use of the session: a session about to run idle
        (30 minutes by default) does so with its stream open, and the stream closes."""
        ui = await start_ui(self, env=FAST_CHECKS, now=NOW)
        viewer = ui.add_user("lee", "viewer")
        response, body = await _open(ui, "/api/events", viewer)
        self.assertEqual(response.code, 200)
        await wait_for(lambda: b"event: hello" in body.data, "the hello event")
        ui.sql("UPDATE sessions SET last_seen_at = now() - interval '29 minutes 59.5 seconds' WHERE user_id = %s",
               (viewer.user_id,))
        await wait_for(lambda: body.ended.called, "the stream to close")
        self.assertIn(b'"error": "session ended"', body.data)
        self.assertEqual(ui.sql("SELECT last_seen_at < now() - interval '30 minutes' FROM sessions"
                                " WHERE user_id = %s", (viewer.user_id,)), [(True,)])

    @d
    async def test_live_events_close_at_logout(self):
        """The live event stream of a session ends when that session logs out."""
        ui = await start_ui(self, env=FAST_CHECKS, now=NOW)
        viewer = ui.add_user("park", "viewer")
        response, body = await _open(ui, "/api/events", viewer)
        self.assertEqual(response.code, 200)
        await wait_for(lambda: b"event: hello" in body.data, "the hello event")
        answer, _ = await ui.post("/logout", viewer)
        self.assertEqual(answer.code, 303)
        await wait_for(lambda: body.ended.called, "the stream to close")
        self.assertIn(b'"error": "session ended"', body.data)
        self.assertTrue(body.reason.check(ResponseDone), body.reason)


class CsvExportFailureTests(TestCase):
    @d
    async def test_database_error_mid_export_fails_the_download(self):
        """When the database connection dies while the CSV streams, the download ends as failed
        (no last chunk) and nothing but CSV rows reached the file: no error text appended."""
        ui = await start_ui(self, now=NOW)
        viewer = ui.add_user("choi", "viewer")
        ui.sql("""INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,
                      customer_name, ccl_bom, thickness, width, length_value, raw)
                  SELECT 'CCL1', g, %s, %s, 'X' || lpad(g::text, 7, '0'), '고객', 'PCM-A01', 0.5, 1219, 2400, '\\x00'
                  FROM generate_series(1, %s) g""", (NOW, NOW, MANY_COILS))
        killed = []

        def kill_the_export_connection(body: _Body) -> None:
            # Once rows arrive, the export is between two FETCHes of its cursor: end its connection.
            if not killed and body.data.count(b"\r\n") > 10:
                killed.extend(ui.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid() AND query LIKE '%%ccl_export%%'"))

        response, body = await _open(ui, "/coils.csv?from=2026-11-27&to=2026-11-27&sort=coil_number&order=asc",
                                     viewer, on_data=kill_the_export_connection)
        self.assertEqual(response.code, 200)
        await body.ended
        self.assertEqual(killed, [(True,)])
        self.assertFalse(body.reason.check(ResponseDone), "the download ended as if complete")
        lines = body.data.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"\xef\xbb\xbfcoil_number,"))
        received = [line for line in lines[1:] if line]
        self.assertLess(len(received), MANY_COILS)
        # Every whole line is a coil row (the last one may be cut off); no error page or message.
        self.assertTrue(all(line.startswith(b"X") for line in received), received[-3:])
        self.assertNotIn(b"<html", body.data)
        self.assertNotIn(b"error", body.data.lower())
        # The UI goes on serving: its pool reconnects the killed connection in the background.
        for _ in range(300):
            answer, _ = await ui.get("/api/whoami", viewer)
            if answer.code == 200 and not any(c.detector.connectionIsDead for c in ui.db._pool.connections):
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(answer.code, 200)
        # txpostgres logs the killed connection's last poll; that is the database error we caused.
        self.flushLoggedErrors(psycopg2.OperationalError, psycopg2.InterfaceError)
