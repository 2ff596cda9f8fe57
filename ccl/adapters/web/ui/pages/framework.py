"""로그인, logout, /health, static files, /api/whoami."""

from __future__ import annotations

import hmac
import re
import secrets

from twisted.web.resource import ForbiddenResource
from twisted.web.static import File

from ccl.adapters.web.ui.routing import route
from ccl.adapters.web.ui.sessions import COOKIE

# Login form CSRF: before there is a session, a random value in a cookie must come back in the form.
LOGIN_COOKIE = "ccl_login_csrf"
MAX_PASSWORD = 1024


@route("health", "/health")
async def health(ctx):
    """ok when the database answers; degraded (still 200: restarting the UI would not help) when not."""
    try:
        await ctx.uses.probe.ping()
        database = "ok"
    except Exception as error:
        database = f"unreachable: {str(error).strip() or type(error).__name__}"
    return {"status": "ok" if database == "ok" else "degraded", "service": "ui-service", "database": database}


@route("static", "/static/", branch=True)
def static(ctx):
    ctx.request.setHeader(b"cache-control", b"public, max-age=3600")
    return _StaticFile(str(ctx.ui.web / "static"))


class _StaticFile(File):
    """Files under web/static; a directory is not listed."""

    def directoryListing(self):  # noqa: N802 (twisted's name)
        return ForbiddenResource()


_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9/_.~%?=&+,;:@!-]*$")


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never //host, a backslash, white space or control characters
    (browsers drop tabs and newlines, which would turn "/\t/evil" into "//evil")."""
    if value and _LOCAL_PATH.match(value):
        return value
    return "/"


def _login_page(ctx, message: str | None = None, code: int = 200, username: str = ""):
    pre = secrets.token_urlsafe(24)
    ctx.request.addCookie(LOGIN_COOKIE.encode(), pre.encode(), path=b"/login", httpOnly=True, sameSite="strict",
                          secure=ctx.ui.cookie_secure(ctx.request))
    ctx.request.setResponseCode(code)
    return ctx.render("login.html", login_csrf=pre, message=message, username=username,
                      next=_safe_next(ctx.arg("next")))


@route("login", "/login")
def login(ctx):
    if ctx.session is not None:
        return ctx.redirect(_safe_next(ctx.arg("next")))
    message = None
    if ctx.arg("logged_out"):
        message = ctx._("로그아웃되었습니다.")
    return _login_page(ctx, message)


@route("login_submit", "/login", methods=("POST",))
async def login_submit(ctx):
    request = ctx.request
    sent = ctx.arg("csrf_token") or ""
    expected = request.getCookie(LOGIN_COOKIE.encode()) or b""
    if not expected or not hmac.compare_digest(sent.encode("ascii", errors="replace"), expected):
        return _login_page(ctx, ctx._("요청을 확인할 수 없습니다 (CSRF). 페이지를 새로 고친 뒤 다시 시도하세요."), 403)
    username = (ctx.arg("username") or "").strip()[:64]
    password = (ctx.arg("password") or "")[:MAX_PASSWORD]
    result = await ctx.uses.accounts.login(
        username, password, client_address=ctx.client_address,
        user_agent=(request.getHeader(b"user-agent") or b"").decode("utf-8", errors="replace"))
    if result.outcome != "ok":
        message = {
            "locked": "로그인 시도가 너무 많아 계정이 잠시 잠겼습니다. 나중에 다시 시도하세요.",
            "disabled": "사용이 중지된 계정입니다.",
        }.get(result.outcome, "아이디 또는 비밀번호가 올바르지 않습니다.")
        return _login_page(ctx, ctx._(message), 401, username)
    request.addCookie(COOKIE.encode(), result.token.encode(), path=b"/", httpOnly=True, sameSite="strict",
                      secure=ctx.ui.cookie_secure(request))
    request.addCookie(LOGIN_COOKIE.encode(), b"", path=b"/login", max_age=b"0", httpOnly=True, sameSite="strict")
    return ctx.redirect(_safe_next(ctx.arg("next")))


@route("logout", "/logout", methods=("POST",))
async def logout(ctx):
    await ctx.uses.accounts.logout(ctx.session, ctx.actor)
    ctx.request.addCookie(COOKIE.encode(), b"", path=b"/", max_age=b"0", httpOnly=True, sameSite="strict",
                          secure=ctx.ui.cookie_secure(ctx.request))
    return ctx.redirect("/login?logged_out=1")


@route("whoami", "/api/whoami")
def whoami(ctx):
    return {"username": ctx.user.username, "role": ctx.user.role, "display_name": ctx.user.display_name,
            "csrf_token": ctx.csrf_token}
