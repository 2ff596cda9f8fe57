"""관리 (admin only): users, the audit log, inspection settings.

New and reset passwords are generated here (never typed by the admin, never a default),
hashed in a thread, and shown exactly once in the answer to the POST. Disabling a user or
resetting the password ends the user's sessions. The last enabled admin cannot be demoted
or disabled, so the plant cannot lock itself out. Every change lands in audit_logs.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.internet.threads import deferToThread

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.domain import inspection_settings
from ccl.domain.accounts import ROLES, AccountError, check_role, check_username, generate_password, hash_password

PAGE_SIZE = 50
PLANT_TZ = ZoneInfo("Asia/Seoul")
_USER_COLUMNS = ("id", "username", "display_name", "role", "disabled", "locked_until", "last_login_at", "created_at")


async def _users(db) -> list[dict]:
    rows = await db.runQuery(f"SELECT {', '.join(_USER_COLUMNS)}, locked_until > now() FROM users ORDER BY username")
    return [dict(zip(_USER_COLUMNS, row), locked=bool(row[-1])) for row in rows]


async def _users_page(ctx, *, code: int = 200, error: str | None = None, new_password: dict | None = None,
                      form: dict | None = None):
    ctx.request.setResponseCode(code)
    ctx.request.setHeader(b"cache-control", b"no-store")  # may hold a password shown once
    return ctx.render("admin_users.html", users=await _users(ctx.db), roles=ROLES, error=error,
                      new_password=new_password, form=form or {}, saved=ctx.arg("saved"), tab="users")


@route("admin_users", "/admin/users")
async def users(ctx):
    return await _users_page(ctx)


@route("admin_user_create", "/admin/users", methods=("POST",))
async def create_user(ctx):
    form = {"username": (ctx.arg("username") or "").strip(), "display_name": (ctx.arg("display_name") or "").strip()[:100],
            "role": ctx.arg("role") or ""}
    try:
        check_username(form["username"])
        check_role(form["role"])
    except AccountError as error:
        return await _users_page(ctx, code=400, error=str(error), form=form)
    password = generate_password()
    hashed = await deferToThread(hash_password, password)
    rows = await ctx.db.runQuery(
        "INSERT INTO users (username, display_name, password_hash, role) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (username) DO NOTHING RETURNING id",
        (form["username"], form["display_name"], hashed, form["role"]))
    if not rows:
        await ctx.audit("user.create", form["username"], "exists", {"role": form["role"]})
        return await _users_page(ctx, code=409, error=f"user {form['username']!r} already exists", form=form)
    await ctx.audit("user.create", form["username"], "ok", {"role": form["role"]})
    return await _users_page(ctx, new_password={"username": form["username"], "password": password})


async def _target(ctx, user_id: int) -> dict:
    rows = await ctx.db.runQuery(f"SELECT {', '.join(_USER_COLUMNS)} FROM users WHERE id = %s", (user_id,))
    if not rows:
        raise HTTPError(404, "no such user", {"id": user_id})
    return dict(zip(_USER_COLUMNS, rows[0]))


@route("admin_user_update", "/admin/users/<int:user_id>", methods=("POST",))
async def update_user(ctx, user_id):
    before = await _target(ctx, user_id)
    role = ctx.arg("role") or before["role"]
    display_name = (ctx.arg("display_name") if ctx.arg("display_name") is not None else before["display_name"])
    display_name = display_name.strip()[:100]
    disabled = ctx.arg("disabled") in ("on", "1", "true", "yes")
    try:
        check_role(role)
    except AccountError as error:
        return await _users_page(ctx, code=400, error=str(error))

    @defer.inlineCallbacks
    def change(cursor):
        yield cursor.execute("SELECT id FROM users WHERE role = 'admin' AND NOT disabled FOR UPDATE")
        admins = {row[0] for row in cursor.fetchall()}
        if user_id in admins and admins == {user_id} and (role != "admin" or disabled):
            return False
        yield cursor.execute("UPDATE users SET role = %s, display_name = %s, disabled = %s WHERE id = %s",
                             (role, display_name, disabled, user_id))
        if disabled:
            yield cursor.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))
        return True

    if not await ctx.db.runInteraction(change):
        await ctx.audit("user.update", before["username"], "refused: last admin", {"role": role, "disabled": disabled})
        return await _users_page(ctx, code=409, error="the last enabled admin cannot be demoted or disabled")
    changes = {key: [before[key], new] for key, new in (("role", role), ("display_name", display_name),
                                                       ("disabled", disabled)) if before[key] != new}
    await ctx.audit("user.update", before["username"], "ok", changes)
    return ctx.redirect("/admin/users?saved=1")


@route("admin_user_reset", "/admin/users/<int:user_id>/reset-password", methods=("POST",))
async def reset_password(ctx, user_id):
    target = await _target(ctx, user_id)
    password = generate_password()
    hashed = await deferToThread(hash_password, password)

    @defer.inlineCallbacks
    def reset(cursor):
        yield cursor.execute(
            "UPDATE users SET password_hash = %s, password_changed_at = now(), failed_logins = 0, locked_until = NULL"
            " WHERE id = %s", (hashed, user_id))
        yield cursor.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))

    await ctx.db.runInteraction(reset)
    await ctx.audit("user.reset_password", target["username"], "ok")
    if user_id == ctx.user.id:
        # The admin reset their own password: their session ended with the others.
        ctx.request.setHeader(b"cache-control", b"no-store")
        return ctx.render("password_once.html", new_password={"username": target["username"], "password": password})
    return await _users_page(ctx, new_password={"username": target["username"], "password": password})


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
    where, params = [], []
    if actor:
        where.append("actor = %s")
        params.append(actor)
    if action:
        # Prefix match: "user." finds user.create, user.update, ...
        where.append("action LIKE %s")
        params.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if start:
        where.append("at >= %s")
        params.append(datetime.combine(start, time(), PLANT_TZ))
    if end:
        where.append("at < %s")
        params.append(datetime.combine(end + timedelta(days=1), time(), PLANT_TZ))
    sql = ("SELECT id, at, actor, client_address, action, target, result, details FROM audit_logs"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY at DESC, id DESC LIMIT %s OFFSET %s")
    rows = await ctx.db.runQuery(sql, (*params, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE))
    keys = ("id", "at", "actor", "client_address", "action", "target", "result", "details")
    entries = [dict(zip(keys, row)) for row in rows[:PAGE_SIZE]]
    for entry in entries:
        entry["details"] = json.dumps(entry["details"], ensure_ascii=False) if entry["details"] else ""
    filters = {"actor": actor, "action": action, "from": start.isoformat() if start else "",
               "to": end.isoformat() if end else ""}
    return ctx.render("admin_audit.html", entries=entries, filters=filters, page=page,
                      has_next=len(rows) > PAGE_SIZE, tab="audit")


# Settings ---------------------------------------------------------------------------------

SETTING_KEYS = ("defect_types", "severity_thresholds", "review_threshold")


async def current_settings(db) -> inspection_settings.InspectionSettings:
    rows = await db.runQuery("SELECT key, value FROM system_settings WHERE key = ANY(%s)", (list(SETTING_KEYS),))
    return inspection_settings.from_rows(dict(rows))


def _settings_form(settings: inspection_settings.InspectionSettings) -> dict:
    return {"defect_types": "\n".join(settings.defect_types), "critical": settings.critical, "high": settings.high,
            "medium": settings.medium, "review": settings.review}


@route("admin_settings", "/admin/settings")
async def settings_page(ctx):
    return ctx.render("admin_settings.html", form=_settings_form(await current_settings(ctx.db)), errors={},
                      saved=ctx.arg("saved"), tab="settings")


@route("admin_settings_save", "/admin/settings", methods=("POST",))
async def settings_save(ctx):
    form = {key: ctx.arg(key) or "" for key in ("defect_types", "critical", "high", "medium", "review")}
    try:
        new = inspection_settings.validate(**form)
    except inspection_settings.SettingsError as error:
        ctx.request.setResponseCode(400)
        return ctx.render("admin_settings.html", form=form, errors=error.errors, saved=None, tab="settings")
    before = await current_settings(ctx.db)
    username = ctx.user.username

    @defer.inlineCallbacks
    def store(cursor):
        for key, value in new.as_rows().items():
            yield cursor.execute(
                "INSERT INTO system_settings (key, value, updated_at, updated_by) VALUES (%s, %s, now(), %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
                (key, json.dumps(value, ensure_ascii=False), username))

    await ctx.db.runInteraction(store)
    await ctx.audit("settings.update", "inspection", "ok", {"before": before.as_rows(), "after": new.as_rows()})
    return ctx.redirect("/admin/settings?saved=1")
