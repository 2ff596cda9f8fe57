"""통신 진단: the telegrams we refused (NAKed) and 고기원's dead letters, and sending one again.

Everything goes through the use cases of ccl/application/refusals.py (``ctx.uses``); nothing
here talks to the database. Sending again is a form POST (CSRF token, admins only, see
access.py); it is audited by the use case in the same transaction, whatever the outcome, and
an entry that is not a dead letter is refused with 409 and the reason.
"""

from __future__ import annotations

from twisted.logger import Logger

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui import i18n
from ccl.adapters.web.ui.access import allowed
from ccl.adapters.web.ui.routing import route
from ccl.domain.refusals import PAGE_SIZES, BadFilter, NotDead, UnknownEntry

log = Logger()

#: Result codes (ours on 9304, 고기원's in its 4901) -> what they mean, in Korean.
RESULT_MEANING = {
    "00": "ACK 후 데이터베이스 저장 거부",
    "10": "알 수 없는 TC 코드",
    "11": "길이 필드가 TC 길이와 다름",
    "12": "필드 형식 오류",
    "13": "헤더 판독 불가",
}
LISTENER_LABEL = {"mes": "MES 수신 (9304)", "gokiwon-ack": "고기원 ACK 수신 (9306)"}
STATE_LABEL = {"pending": "전송 대기", "delivered": "전달됨", "refused": "거부됨"}
VIEW_LABEL = {"dead": "미전달 (거부됨)", "resent": "재전송 이력"}
FIELD_PART = {"header": "헤더", "body": "본문", "extra": "초과 바이트"}

_REJECTED_ARGS = ("from", "to", "tc", "code", "listener", "page", "size")
_DEAD_ARGS = ("from", "to", "view", "channel", "tc", "page", "size")


def _args(ctx, names) -> dict[str, str]:
    return {name: value for name in names if (value := ctx.arg(name)) is not None}


def _chosen(use_case, ctx, names):
    try:
        return use_case.choose(_args(ctx, names))
    except BadFilter as error:
        raise HTTPError(400, "bad filter", str(error)) from None


def _labels() -> dict:
    return {"meaning": RESULT_MEANING, "listener_label": LISTENER_LABEL, "state_label": STATE_LABEL,
            "view_label": VIEW_LABEL, "field_part": FIELD_PART, "page_sizes": PAGE_SIZES}


@route("diagnostics", "/diagnostics")
def diagnostics(ctx):
    return ctx.redirect("/diagnostics/rejected")


@route("rejected_telegrams", "/diagnostics/rejected")
async def rejected_telegrams(ctx):
    uses = ctx.uses.rejected_telegrams
    chosen = _chosen(uses, ctx, _REJECTED_ARGS)
    listing = await uses.search(chosen)
    return ctx.render("diag_rejected.html", tab="rejected", chosen=chosen, listing=listing, tc_codes=uses.tc_codes,
                      **_labels())


@route("rejected_telegram", "/diagnostics/rejected/<int:rejected_id>")
async def rejected_telegram(ctx, rejected_id):
    try:
        found, view = await ctx.uses.rejected_telegrams.show(rejected_id)
    except UnknownEntry:
        return ctx.fail(404, "거부된 전문을 찾을 수 없습니다.", "no such rejected telegram", {"id": rejected_id})
    return ctx.render("diag_rejected_detail.html", tab="rejected", found=found, view=view, **_labels())


@route("dead_letters", "/diagnostics/dead-letters")
async def dead_letters(ctx):
    uses = ctx.uses.dead_letters
    chosen = _chosen(uses, ctx, _DEAD_ARGS)
    listing = await uses.search(chosen)
    resent = ctx.arg("resent")
    return ctx.render("diag_dead_letters.html", tab="dead", chosen=chosen, listing=listing, channels=uses.channels,
                      tc_codes=uses.tc_codes, can_resend=_may_resend(ctx),
                      resent=int(resent) if resent and resent.isdigit() else None, **_labels())


@route("dead_letter", "/diagnostics/dead-letters/<int:entry_id>")
async def dead_letter(ctx, entry_id):
    try:
        entry, view = await ctx.uses.dead_letters.show(entry_id)
    except UnknownEntry:
        return ctx.fail(404, "전송 대기열 항목을 찾을 수 없습니다.", "no such outbox entry", {"id": entry_id})
    return ctx.render("diag_dead_letter_detail.html", tab="dead", entry=entry, view=view, can_resend=_may_resend(ctx),
                      **_labels())


@route("dead_letter_resend", "/diagnostics/dead-letters/<int:entry_id>/resend", methods=("POST",))
async def dead_letter_resend(ctx, entry_id):
    try:
        entry = await ctx.uses.dead_letters.resend(entry_id, ctx.actor)
    except UnknownEntry:
        return ctx.fail(404, "전송 대기열 항목을 찾을 수 없습니다.", "no such outbox entry", {"id": entry_id})
    except NotDead as refused:
        return ctx.fail(409, "재전송할 수 없습니다: 미전달(거부됨) 상태인 항목만 재전송합니다.", "not a dead letter",
                        {"id": entry_id, "state": refused.state, "reason": str(refused)})
    log.info("{user} sent dead letter {id} ({channel}, TC {tc} #{seq}) again", user=ctx.user.username, id=entry.id,
             channel=entry.channel, tc=entry.tc_code, seq=entry.sequence_no)
    # The re-sent view: the entry with its state (pending now, delivered once 고기원 has taken it).
    return ctx.redirect(f"/diagnostics/dead-letters?view=resent&resent={entry.id}")


def _may_resend(ctx) -> bool:
    return allowed("dead_letter_resend", ctx.user.role if ctx.user else None)


ENGLISH = {
    "통신 진단": "Link diagnosis", "거부된 전문": "Rejected telegrams", "고기원 미전달": "고기원 dead letters",
    "ACK 후 데이터베이스 저장 거부": "ACKed, then refused by the database", "알 수 없는 TC 코드": "Unknown TC code",
    "길이 필드가 TC 길이와 다름": "Length field wrong for the TC", "필드 형식 오류": "Field format error",
    "헤더 판독 불가": "Header unreadable", "MES 수신 (9304)": "From the MES (9304)",
    "고기원 ACK 수신 (9306)": "고기원 ACK link (9306)", "전송 대기": "Pending", "전달됨": "Delivered",
    "거부됨": "Refused", "미전달 (거부됨)": "Dead letters (refused)", "재전송 이력": "Sent again",
    "헤더": "Header", "본문": "Body", "초과 바이트": "Extra bytes", "수신 포트": "Listener", "상대 주소": "Peer",
    "순번": "Sequence", "결과 코드": "Result code", "의미": "Meaning", "사유": "Reason", "바이트": "Bytes",
    "거부된 전문을 찾을 수 없습니다.": "No such rejected telegram.",
    "전송 대기열 항목을 찾을 수 없습니다.": "No such outbox entry.", "채널": "Channel", "보기 방식": "View",
    "대기열 등록": "Queued", "거부 시각": "Refused at", "시도 횟수": "Attempts", "재전송 횟수": "Sent again",
    "마지막 재전송": "Last sent again", "재전송": "Send again", "전문 상세": "Telegram detail",
    "16진수": "Hex", "EUC-KR 문자열": "EUC-KR text", "필드": "Field", "위치": "Offset", "값": "Value",
    "문제": "Problem", "현재 레이아웃 판정": "Verdict of the current layout file", "받아들임": "accepted",
    "앞부분만 표시": "only the beginning shown", "재전송 대기열에 넣었습니다": "Queued to be sent again",
    "다음 점검 주기에 전송됩니다": "the forwarder sends it at its next poll",
    "고기원이 거부한 전문입니다. 원인을 해결한 뒤 재전송하세요.":
        "고기원 refused this telegram. Fix the cause, then send it again.",
    "재전송하면 같은 바이트가 한 번 더 전송됩니다 (대기 중인 전문보다 먼저).":
        "Sending again forwards the same bytes once more (ahead of those waiting).",
    "관리자만 재전송할 수 있습니다.": "Only administrators can send again.", "처음 전송": "First sent",
    "마지막 전송": "Last sent", "전달 시각": "Delivered at", "목록으로": "Back to the list", "레이아웃": "Layout",
    "길이": "Length",
    "재전송할 수 없습니다: 미전달(거부됨) 상태인 항목만 재전송합니다.":
        "Cannot send again: only dead letters (refused) are sent again.",
}
i18n.ENGLISH.update({k: v for k, v in ENGLISH.items() if k not in i18n.ENGLISH})
