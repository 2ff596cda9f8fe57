"""관리 (admin only): users, the audit log, inspection settings.

The rules (generated passwords shown once, sessions ended on disable or reset, the last
enabled admin kept, every change audited) belong to the use cases
(ccl/application/accounts.py, inspection.py); this module reads the forms and renders.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.application.accounts import LastAdmin, NewPassword, UnknownUser, UserExists
from ccl.domain import inspection_settings
from ccl.domain.accounts import ROLES, AccountError
from ccl.ports import AuditQuery

PAGE_SIZE = 50
PLANT_TZ = ZoneInfo("Asia/Seoul")


async def _users_page(ctx, *, code: int = 200, error: str | None = None, new_password: NewPassword | None = None,
                      form: dict | None = None):
    ctx.request.setResponseCode(code)
    ctx.request.setHeader(b"cache-control", b"no-store")  # may hold a password shown once
    return ctx.render("admin_users.html", users=await ctx.uses.accounts.accounts(), roles=ROLES, error=error,
                      new_password=attrs.asdict(new_password) if new_password else None, form=form or {},
                      saved=ctx.arg("saved"), tab="users")


@route("admin_users", "/admin/users")
async def users(ctx):
    return await _users_page(ctx)


@route("admin_user_create", "/admin/users", methods=("POST",))
async def create_user(ctx):
    form = {"username": (ctx.arg("username") or "").strip(), "display_name": (ctx.arg("display_name") or "").strip()[:100],
            "role": ctx.arg("role") or ""}
    try:
        created = await ctx.uses.accounts.create_user(form["username"], form["display_name"], form["role"], ctx.actor)
    except AccountError as error:
        return await _users_page(ctx, code=400, error=str(error), form=form)
    except UserExists as error:
        return await _users_page(ctx, code=409, error=str(error), form=form)
    return await _users_page(ctx, new_password=created)


@route("admin_user_update", "/admin/users/<int:user_id>", methods=("POST",))
async def update_user(ctx, user_id):
    try:
        await ctx.uses.accounts.update_user(user_id, role=ctx.arg("role") or None, display_name=ctx.arg("display_name"),
                                            disabled=ctx.arg("disabled") in ("on", "1", "true", "yes"),
                                            actor=ctx.actor)
    except UnknownUser:
        raise HTTPError(404, "no such user", {"id": user_id}) from None
    except AccountError as error:
        return await _users_page(ctx, code=400, error=str(error))
    except LastAdmin as error:
        return await _users_page(ctx, code=409, error=str(error))
    return ctx.redirect("/admin/users?saved=1")


@route("admin_user_reset", "/admin/users/<int:user_id>/reset-password", methods=("POST",))
async def reset_password(ctx, user_id):
    try:
        new_password = await ctx.uses.accounts.reset_password(user_id, ctx.actor)
    except UnknownUser:
        raise HTTPError(404, "no such user", {"id": user_id}) from None
    if user_id == ctx.user.id:
        # The admin reset their own password: their session ended with the others.
        ctx.request.setHeader(b"cache-control", b"no-store")
        return ctx.render("password_once.html", new_password=attrs.asdict(new_password))
    return await _users_page(ctx, new_password=new_password)


# Audit log --------------------------------------------------------------------------------


def _day(ctx, name: str) -> date | None:
    text = ctx.arg(name) or ""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPError(400, f"bad {name}", "a date like 2026-01-31") from None


@route("admin_audit", "/admin/audit")
async def audit_log(ctx):
    actor = (ctx.arg("actor") or "").strip()
    action = (ctx.arg("action") or "").strip()
    start, end = _day(ctx, "from"), _day(ctx, "to")
    page_text = ctx.arg("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= 100000:
        raise HTTPError(400, "bad page", "page is a whole number from 1")
    page = int(page_text)
    found = await ctx.uses.audit.search(AuditQuery(
        actor=actor, action=action,
        since=datetime.combine(start, time(), PLANT_TZ) if start else None,
        before=datetime.combine(end + timedelta(days=1), time(), PLANT_TZ) if end else None,
        limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE))
    entries = [dict(attrs.asdict(entry, recurse=False),
                    details=json.dumps(entry.details, ensure_ascii=False) if entry.details else "")
               for entry in found[:PAGE_SIZE]]
    filters = {"actor": actor, "action": action, "from": start.isoformat() if start else "",
               "to": end.isoformat() if end else ""}
    return ctx.render("admin_audit.html", entries=entries, filters=filters, page=page,
                      has_next=len(found) > PAGE_SIZE, tab="audit")


# Settings ---------------------------------------------------------------------------------


def _settings_form(settings: inspection_settings.InspectionSettings) -> dict:
    return {"defect_types": "\n".join(settings.defect_types), "critical": settings.critical, "high": settings.high,
            "medium": settings.medium, "review": settings.review}


@route("admin_settings", "/admin/settings")
async def settings_page(ctx):
    return ctx.render("admin_settings.html", form=_settings_form(await ctx.uses.rules.current()), errors={},
                      saved=ctx.arg("saved"), tab="settings")


@route("admin_settings_save", "/admin/settings", methods=("POST",))
async def settings_save(ctx):
    form = {key: ctx.arg(key) or "" for key in ("defect_types", "critical", "high", "medium", "review")}
    try:
        new = inspection_settings.validate(**form)
    except inspection_settings.SettingsError as error:
        ctx.request.setResponseCode(400)
        return ctx.render("admin_settings.html", form=form, errors=error.errors, saved=None, tab="settings")
    await ctx.uses.rules.save(new, ctx.actor)
    return ctx.redirect("/admin/settings?saved=1")
