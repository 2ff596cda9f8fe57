"""통신 진단 pages over real HTTP and PostgreSQL: rejected telegrams (list, filters, paging, the
byte view) and 고기원 dead letters with sending one again (admins only, CSRF, audited, 409 for an
entry that is not dead). Every date is fixed and every listing is asked for its period."""

from __future__ import annotations

import datetime
import re

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.domain.telegrams import PLANT_TZ
from tests.support.mes import schedule, speed
from tests.support.ui import start_ui

FEB = "from=2026-02-01&to=2026-02-28"


def d(coroutine_function):
    def run(self):
        return defer.ensureDeferred(coroutine_function(self))
    run.__name__ = coroutine_function.__name__
    return run


def kst(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 2, day, hour, minute, tzinfo=PLANT_TZ)


def rejected(ui, at, code: str, tc: str | None, seq: int | None, raw: bytes, listener: str = "mes",
             reason: str = "bad") -> int:
    return ui.sql("INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, tc_code,"
                  " sequence_no, raw) VALUES (%s, '10.0.0.5:4100', %s, %s, %s, %s, %s, %s) RETURNING id",
                  (at, listener, code, reason, tc, seq, raw))[0][0]


def outbox(ui, seq: int, state: str, refused_at=None, channel: str = "schedule", raw: bytes | None = None) -> int:
    return ui.sql("INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw, created_at,"
                  " state, attempts, refused_at, refused_code) VALUES (%s, 'tc_4000_schedule', 1, '4000', %s, %s, %s,"
                  " %s, 1, %s, %s) RETURNING id",
                  (channel, seq, raw or schedule(seq), kst(1, 8), state, refused_at,
                   "12" if state == "refused" else None))[0][0]


def row_ids(body: bytes, table: str) -> list[int]:
    tbody = body.decode().split(f'id="{table}"')[1].split("</table>")[0]
    return [int(n) for n in re.findall(r'<tr data-id="(\d+)"', tbody)]


def bad_speed() -> bytes:
    raw = bytearray(speed(5))
    raw[40:44] = b"12x4"
    return bytes(raw)


class RejectedPageTests(TestCase):
    @d
    async def test_viewer_sees_them_newest_first_with_code_meaning_in_korean_then_english(self):
        """A viewer sees the rejected telegrams newest first, in plant time, with the code's meaning in
        Korean (English with ?lang=en)."""
        ui = await start_ui(self)
        viewer = ui.add_user("kim.view", "viewer")
        old = rejected(ui, kst(3, 9), "10", "9999", 1, b"9999" + speed(1)[4:], reason="unknown TC code 9999")
        new = rejected(ui, kst(27, 23, 30), "12", "4003", 5, bad_speed())
        response, body = await ui.get(f"/diagnostics/rejected?{FEB}", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(row_ids(body, "rejected-table"), [new, old])
        text = body.decode()
        self.assertIn("2026-02-27 23:30:00", text)  # plant time
        self.assertIn("필드 형식 오류", text)
        self.assertIn("알 수 없는 TC 코드", text)
        self.assertIn("unknown TC code 9999", text)
        self.assertIn("MES 수신 (9304)", text)
        response, body = await ui.get(f"/diagnostics/rejected?{FEB}&lang=en", viewer)
        self.assertIn("Field format error", body.decode())
        self.assertIn("Rejected telegrams", body.decode())

    @d
    async def test_filters_by_period_tc_code_and_listener_and_pages(self):
        """The list filters by period, TC, result code and listener, and pages with prev/next links."""
        ui = await start_ui(self)
        viewer = ui.add_user("kim.view", "viewer")
        a = rejected(ui, kst(10, 9), "12", "4003", 5, bad_speed())
        b = rejected(ui, kst(11, 9), "11", "4000", 6, schedule(6)[:100])
        c = rejected(ui, kst(12, 9), "13", None, None, b"\x00junk", listener="gokiwon-ack")
        for query, expected in ((f"{FEB}&code=12", [a]), (f"{FEB}&tc=4000", [b]), (f"{FEB}&listener=gokiwon-ack", [c]),
                                ("from=2026-02-11&to=2026-02-11", [b]), ("from=2026-03-01&to=2026-03-02", [])):
            response, body = await ui.get(f"/diagnostics/rejected?{query}", viewer)
            self.assertEqual(row_ids(body, "rejected-table"), expected, query)
        for n in range(30):
            rejected(ui, kst(20, 10, n), "13", None, None, bytes([n]))
        response, body = await ui.get(f"/diagnostics/rejected?{FEB}&code=13&size=25&page=2", viewer)
        self.assertEqual(len(row_ids(body, "rejected-table")), 6)
        self.assertIn("31 건", body.decode())
        self.assertIn('rel="prev"', body.decode())
        self.assertNotIn('rel="next"', body.decode())

    @d
    async def test_bad_filters_are_400_with_the_reason(self):
        """A malformed filter is answered 400."""
        ui = await start_ui(self)
        viewer = ui.add_user("kim.view", "viewer")
        for query in ("from=2026-02-30", "tc=40%270", "code=abc", "page=0", "from=2026-02-10&to=2026-02-01"):
            response, body = await ui.get(f"/diagnostics/rejected?{query}", viewer)
            self.assertEqual(response.code, 400, query)

    @d
    async def test_detail_shows_hex_euc_kr_text_and_the_offending_field(self):
        """The detail page shows the hex rows, the EUC-KR text and marks the offending field; an
        unknown id is 404."""
        ui = await start_ui(self)
        viewer = ui.add_user("kim.view", "viewer")
        raw = bytearray(schedule(6, customer="이알텍㈜"))
        raw[134:140] = b"0x0372"  # thickness (bytes 134-140)
        found = rejected(ui, kst(10, 9), "12", "4000", 6, bytes(raw))
        response, body = await ui.get(f"/diagnostics/rejected/{found}", viewer)
        self.assertEqual(response.code, 200)
        text = body.decode()
        self.assertIn("이알텍㈜", text)  # the EUC-KR bytes decoded
        self.assertIn("000000  34 30 30 30 43 43 4C 31", text)  # the hex rows
        bad_rows = re.findall(r'<tr class="bad"><td>(\w+)</td>', text)
        self.assertEqual(bad_rows, ["thickness"])
        response, _ = await ui.get("/diagnostics/rejected/999999", viewer)
        self.assertEqual(response.code, 404)


class DeadLetterPageTests(TestCase):
    @d
    async def test_everyone_sees_dead_letters_only_admins_get_the_resend_button(self):
        """Every role sees the dead letters newest refusal first (channel filter, detail); only admins
        get the re-send button."""
        ui = await start_ui(self)
        first = outbox(ui, 1, "refused", kst(5, 9))
        second = outbox(ui, 2, "refused", kst(6, 9), channel="speed", raw=speed(2))
        outbox(ui, 3, "delivered")
        for role, button in (("viewer", False), ("operator", False), ("admin", True)):
            login = ui.add_user(f"u.{role}", role)
            response, body = await ui.get(f"/diagnostics/dead-letters?{FEB}", login)
            self.assertEqual(response.code, 200)
            self.assertEqual(row_ids(body, "dead-table"), [second, first])
            self.assertEqual(b'/resend"' in body, button, role)
        response, body = await ui.get(f"/diagnostics/dead-letters?{FEB}&channel=speed", login)
        self.assertEqual(row_ids(body, "dead-table"), [second])
        response, body = await ui.get(f"/diagnostics/dead-letters/{first}", login)
        self.assertEqual(response.code, 200)
        self.assertIn("H477707", body.decode())

    @d
    async def test_admin_resends_a_dead_letter_once_audited_and_it_shows_as_resent(self):
        """An admin's re-send makes the entry pending once, audited, shown as re-sent; a second one is
        409 with the reason, audited."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        entry = outbox(ui, 1, "refused", kst(5, 9))
        response, body = await ui.post(f"/diagnostics/dead-letters/{entry}/resend", admin,
                                       data={"csrf_token": admin.csrf}, csrf=False)
        self.assertEqual(response.code, 303, body)
        self.assertEqual(response.headers.getRawHeaders(b"location"),
                         [f"/diagnostics/dead-letters?view=resent&resent={entry}".encode()])
        self.assertEqual(ui.sql("SELECT state, resent_count FROM forward_outbox WHERE id = %s", (entry,)),
                         [("pending", 1)])
        self.assertEqual(ui.sql("SELECT actor, client_address, action, target, result FROM audit_logs"),
                         [("boss", "127.0.0.1", "dead_letter.resend", str(entry), "ok")])
        response, body = await ui.get(f"/diagnostics/dead-letters?resent={entry}&{FEB}", admin)
        self.assertIn('id="resent-notice"', body.decode())
        self.assertEqual(row_ids(body, "dead-table"), [])  # no longer a dead letter

        # Again: it is pending now, not dead -> 409 with the reason, audited, nothing changed.
        response, body = await ui.post(f"/diagnostics/dead-letters/{entry}/resend", admin,
                                       data={"csrf_token": admin.csrf}, csrf=False)
        self.assertEqual(response.code, 409)
        self.assertIn("미전달(거부됨) 상태인 항목만 재전송합니다", body.decode())
        self.assertEqual(ui.sql("SELECT state, resent_count FROM forward_outbox WHERE id = %s", (entry,)),
                         [("pending", 1)])
        self.assertEqual(ui.sql("SELECT result FROM audit_logs ORDER BY id"), [("ok",), ("not dead (pending)",)])

    @d
    async def test_resend_refused_for_delivered_unknown_and_users_without_the_role(self):
        """Re-sending is refused for a delivered entry (409), an unknown id (404), viewers and
        operators (403) and without CSRF (403); nothing changes."""
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin")
        delivered = outbox(ui, 1, "delivered")
        dead = outbox(ui, 2, "refused", kst(5, 9))
        response, body = await ui.post(f"/diagnostics/dead-letters/{delivered}/resend", admin,
                                       data={"csrf_token": admin.csrf}, csrf=False)
        self.assertEqual(response.code, 409)
        response, _ = await ui.post("/diagnostics/dead-letters/999999/resend", admin,
                                    data={"csrf_token": admin.csrf}, csrf=False)
        self.assertEqual(response.code, 404)
        for role in ("viewer", "operator"):
            login = ui.add_user(f"u.{role}", role)
            response, _ = await ui.post(f"/diagnostics/dead-letters/{dead}/resend", login,
                                        data={"csrf_token": login.csrf}, csrf=False)
            self.assertEqual(response.code, 403, role)
        response, _ = await ui.post(f"/diagnostics/dead-letters/{dead}/resend", admin, data={}, csrf=False)
        self.assertEqual(response.code, 403)  # no CSRF token
        self.assertEqual(ui.sql("SELECT state, resent_count FROM forward_outbox ORDER BY id"),
                         [("delivered", 0), ("refused", 0)])
        self.assertEqual(ui.sql("SELECT actor, target, result FROM audit_logs ORDER BY id"),
                         [("boss", str(delivered), "not dead (delivered)"), ("boss", "999999", "no such entry")])
