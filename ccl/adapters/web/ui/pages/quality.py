"""관리 > 품질 (admins): the grading rule book (a JSON editor with a preview over the recently
graded coils; every save a new version), the roll table and the live alarm rules; and the grade
override on the coil page (operators and admins, with a reason). The rules belong to the use
cases (ccl/application/quality.py); every change is audited there."""

from __future__ import annotations

import json

import attrs

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.adapters.web.ui.pages._data import check_coil
from ccl.application.quality import AlarmRulesError, RollError, UnknownCoil, UnknownRoll, parse_document
from ccl.domain.quality.grading import CONDITION_KINDS, DISPOSITIONS, ZONES, RuleBookError

MAX_DOCUMENT = 200_000


async def _page(ctx, *, code: int = 200, errors: dict | None = None, alarm_text: str | None = None,
                roll_form: dict | None = None):
    ctx.request.setResponseCode(code)
    book = await ctx.uses.grading.book()
    versions = await ctx.uses.grading.books(20)
    rules = await ctx.uses.quality.alarm_rules()
    return ctx.render(
        "admin_quality.html", tab="quality", errors=errors or {}, saved=ctx.arg("saved"),
        book=attrs.asdict(book) if book else None,
        book_text=json.dumps(book.document if book else {"grades": ["A"], "rules": []}, ensure_ascii=False, indent=2),
        versions=[attrs.asdict(v) for v in versions],
        rolls=[attrs.asdict(r) for r in await ctx.uses.quality.rolls()],
        alarm_text=alarm_text if alarm_text is not None else json.dumps(rules, ensure_ascii=False, indent=2),
        roll_form=roll_form or {}, kinds=CONDITION_KINDS, dispositions=DISPOSITIONS, zones=ZONES)


@route("admin_quality", "/admin/quality")
async def quality_page(ctx):
    return await _page(ctx)


def _document(ctx) -> tuple[dict, str]:
    body = ctx.json_body()
    text = body.get("document") if isinstance(body, dict) else None
    if not isinstance(text, str) or len(text) > MAX_DOCUMENT:
        raise HTTPError(400, "bad rule book", {"json": f"the rule book as JSON text, at most {MAX_DOCUMENT} characters"})
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise HTTPError(400, "bad comment", "text")
    try:
        return parse_document(text), comment
    except RuleBookError as error:
        raise HTTPError(400, "bad rule book", error.errors) from None


@route("rule_book_preview", "/api/admin/rule-book/preview", methods=("POST",))
async def rule_book_preview(ctx):
    """How the recently graded coils would change under the draft (nothing is stored)."""
    document, _ = _document(ctx)
    try:
        changed = await ctx.uses.grading.preview(document)
    except RuleBookError as error:
        raise HTTPError(400, "bad rule book", error.errors) from None
    return {"coils": ctx.uses.grading.PREVIEW_COILS, "changes": changed}


@route("rule_book_save", "/api/admin/rule-book", methods=("POST",))
async def rule_book_save(ctx):
    document, comment = _document(ctx)
    try:
        saved = await ctx.uses.grading.save_book(document, comment, ctx.actor)
    except RuleBookError as error:
        raise HTTPError(400, "bad rule book", error.errors) from None
    return {"version": saved.version, "active": saved.active, "comment": saved.comment}


@route("rule_books", "/api/admin/rule-books")
async def rule_books(ctx):
    return {"versions": [attrs.asdict(v) for v in await ctx.uses.grading.books(50)]}


@route("roll_save", "/admin/quality/rolls", methods=("POST",))
async def roll_save(ctx):
    roll_id = ctx.arg("id") or ""
    if roll_id and not roll_id.isdigit():
        raise HTTPError(400, "bad roll id", "a whole number")
    form = {k: ctx.arg(k) or "" for k in ("name", "diameter_mm", "location", "notes")}
    try:
        await ctx.uses.quality.save_roll(int(roll_id) if roll_id else None, form["name"], form["diameter_mm"],
                                         form["location"], form["notes"], ctx.actor)
    except RollError as error:
        return await _page(ctx, code=400, errors={f"roll.{k}": v for k, v in error.errors.items()}, roll_form=form)
    except UnknownRoll:
        raise HTTPError(404, "no such roll", {"id": roll_id}) from None
    return ctx.redirect("/admin/quality?saved=roll#rolls")


@route("roll_delete", "/admin/quality/rolls/<int:roll_id>/delete", methods=("POST",))
async def roll_delete(ctx, roll_id):
    try:
        await ctx.uses.quality.delete_roll(roll_id, ctx.actor)
    except UnknownRoll:
        raise HTTPError(404, "no such roll", {"id": roll_id}) from None
    return ctx.redirect("/admin/quality?saved=roll#rolls")


@route("alarm_rules_save", "/admin/quality/alarms", methods=("POST",))
async def alarm_rules_save(ctx):
    text = ctx.arg("rules") or ""
    try:
        await ctx.uses.quality.save_alarm_rules(text, ctx.actor)
    except AlarmRulesError as error:
        return await _page(ctx, code=400, errors={"alarm_rules": str(error)}, alarm_text=text)
    return ctx.redirect("/admin/quality?saved=alarms#alarms")


@route("coil_grade_override", "/api/coils/<coil>/grade", methods=("POST",))
async def grade_override(ctx, coil):
    """``{"tracked_coil", "grade", "disposition", "reason"}``: the operator's decision over the computed one."""
    check_coil(coil)
    body = ctx.json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "bad override", "an object with tracked_coil, grade, disposition and reason")
    tracked = body.get("tracked_coil") or coil
    fields = [tracked, body.get("grade"), body.get("disposition"), body.get("reason")]
    if not all(isinstance(v, str) for v in fields) or not (tracked == coil or tracked.startswith(coil + "#")):
        raise HTTPError(400, "bad override", "tracked_coil (this coil), grade, disposition and reason as text")
    try:
        await ctx.uses.grading.override(tracked, fields[1], fields[2], fields[3][:500], ctx.actor)
    except UnknownCoil:
        raise HTTPError(404, "no grade for this coil", {"tracked_coil": tracked}) from None
    except ValueError as error:
        raise HTTPError(400, "bad override", str(error)) from None
    return {"grades": await ctx.uses.grading.grades(coil)}
