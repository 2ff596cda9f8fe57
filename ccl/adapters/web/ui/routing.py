"""Route declarations and the per-request guard: session, role, CSRF, errors.

Handlers are declared with :func:`route` (see ``access.py`` for how to add a page): the
decorator only marks the function; each ``UI`` instance collects the marked functions of its
page modules (:func:`collect_routes`) into its own Klein app, so nothing is registered
globally at import. The guard in :func:`guarded` runs before every handler and is the only
place that decides whether a request may go on, using the route's entry of ``access.ACCESS``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccl.adapters.web.errors import HTTPError, error_body
from ccl.adapters.web.ui import i18n
from ccl.adapters.web.ui.access import ACCESS, Rule, nav_for
from ccl.adapters.web.ui.sessions import COOKIE
from ccl.ports import Actor, Session, StoreUnavailable, User

log = Logger()

SAFE_METHODS = {b"GET", b"HEAD"}


@attrs.frozen
class Route:
    name: str
    path: str
    methods: tuple[str, ...]
    handler: Callable[..., Any]
    branch: bool = False


_MARK = "ccl_ui_route"


def route(name: str, path: str, methods: tuple[str, ...] = ("GET",), branch: bool = False):
    """Declare ``handler(ctx, **path_values)`` as the route ``name``, which must be in ACCESS."""
    if name not in ACCESS:
        raise KeyError(f"route {name!r} has no entry in ccl/adapters/web/ui/access.py ACCESS")

    def decorate(handler):
        setattr(handler, _MARK, Route(name, path, tuple(methods), handler, branch))
        return handler

    return decorate


def collect_routes(modules: Iterable[ModuleType]) -> tuple[Route, ...]:
    """The routes declared in ``modules``, in module and source order; a name used twice is refused."""
    found: list[Route] = []
    for module in modules:
        # vars() keeps the order of definition: routes are added in source order.
        found.extend(getattr(value, _MARK) for value in vars(module).values() if hasattr(value, _MARK))
    names = [r.name for r in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise KeyError(f"route(s) {', '.join(twice)} declared twice")
    return tuple(found)


@attrs.define
class Context:
    """What a handler gets: the request, the user, and helpers to answer."""

    ui: Any
    request: Any
    route: str
    rule: Rule
    session: Session | None
    language: str

    @property
    def user(self) -> User | None:
        return self.session.user if self.session else None

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""

    @property
    def uses(self):
        """The use cases and read ports (``ccl.adapters.web.ui.uses.UseCases``)."""
        return self.ui.uses

    @property
    def settings(self):
        return self.ui.settings

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail."""
        return Actor(self.user.username if self.user else "anonymous", self.client_address)

    @property
    def client_address(self) -> str | None:
        peer = self.request.getClientAddress()
        return getattr(peer, "host", None)

    def _(self, text: str) -> str:
        return i18n.translator(self.language)(text)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.request.args.get(name.encode("ascii"))
        if not values:
            return default
        return values[0].decode("utf-8", errors="replace")

    def json_body(self) -> dict:
        try:
            self.request.content.seek(0)
            body = json.loads(self.request.content.read() or b"{}")
        except ValueError as error:
            raise HTTPError(400, "body is not valid JSON", str(error)) from None
        if not isinstance(body, dict):
            raise HTTPError(400, "body must be a JSON object")
        return body

    def render(self, template: str, **values) -> str:
        self.request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return self.ui.render(template, self, **values)

    def json(self, value: Any, code: int = 200) -> bytes:
        self.request.setResponseCode(code)
        self.request.setHeader(b"content-type", b"application/json; charset=utf-8")
        self.request.setHeader(b"cache-control", b"no-store")
        return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")

    def error(self, code: int, message: str, details: Any = None):
        self.request.setResponseCode(code)
        if self.rule.kind == "page":
            return self.render("error.html", code=code, message=message, details=details)
        return self.json(error_body(message, details), code)

    def fail(self, code: int, korean: str, english: str, details: Any = None):
        """Refuse: the page in the user's language, or JSON with a stable English error."""
        if self.rule.kind == "page":
            return self.error(code, self._(korean), details)
        return self.error(code, english, details)

    def redirect(self, path: str) -> bytes:
        # Only our own paths: never an open redirect to another site.
        if not path.startswith("/") or path.startswith("//"):
            path = "/"
        self.request.setResponseCode(303)
        self.request.setHeader(b"location", path.encode("utf-8"))
        return b""

    def nav(self):
        registered = self.ui.route_names
        return [item for item in nav_for(self.user.role if self.user else None) if item.route in registered]

    async def audit(self, action: str, target: str | None, result: str, details: dict | None = None) -> None:
        await self.uses.audit.append(self.actor, action, target, result, details)


def _cookie(request, name: str) -> str | None:
    value = request.getCookie(name.encode("ascii"))
    return value.decode("ascii", errors="replace") if value else None


def _csrf_ok(request, session: Session) -> bool:
    sent = request.getHeader(b"x-csrf-token")
    if sent is None:
        values = request.args.get(b"csrf_token")
        sent = values[0] if values else None
    return bool(sent) and hmac.compare_digest(sent, session.csrf_token.encode("ascii"))


def guarded(ui, route_: Route) -> Callable[..., Any]:
    """Wrap a handler with the access rule of its route."""
    rule = ACCESS[route_.name]

    async def handle(request, **values):
        language = i18n.pick_language(
            (request.args.get(b"lang") or [b""])[0].decode("ascii", errors="replace") or None,
            _cookie(request, i18n.COOKIE),
        )
        if request.args.get(b"lang"):
            request.addCookie(i18n.COOKIE.encode(), language.encode(), path=b"/", sameSite="strict",
                              max_age=b"31536000")
        ctx = Context(ui, request, route_.name, rule, None, language)
        ui.security_headers(request)
        try:
            if rule.roles is not None:
                ctx.session = await ui.sessions.lookup(_cookie(request, COOKIE))
                if ctx.session is None:
                    if rule.kind == "page":
                        target = request.uri.decode("utf-8", errors="replace")
                        if request.method in SAFE_METHODS and target not in ("/", "/logout"):
                            return ctx.redirect("/login?next=" + quote(target, safe=""))
                        return ctx.redirect("/login")
                    return ctx.error(401, "login required", "no valid session: log in at /login")
                if ctx.session.user.role not in rule.roles:
                    log.info("refused {route} to {user} ({role})", route=route_.name,
                             user=ctx.session.user.username, role=ctx.session.user.role)
                    return ctx.fail(403, "권한이 없습니다.", "forbidden",
                                    f"role {ctx.session.user.role!r} may not use this")
                if request.method not in SAFE_METHODS and not _csrf_ok(request, ctx.session):
                    log.warn("CSRF token missing or wrong for {route} from {user}", route=route_.name,
                             user=ctx.session.user.username)
                    return ctx.fail(403, "요청을 확인할 수 없습니다 (CSRF). 페이지를 새로 고친 뒤 다시 시도하세요.",
                                    "CSRF token missing or wrong",
                                    "send the session's token as X-CSRF-Token or the form field csrf_token")
            elif rule.kind == "page":
                # A public page (the login page) still wants to know who is logged in; files and JSON do not.
                ctx.session = await ui.sessions.lookup(_cookie(request, COOKIE))
            result = route_.handler(ctx, **values)
            if rule.kind == "sse" and ctx.session is not None:
                result = _until_session_ends(ctx, result)
            if hasattr(result, "__await__") or hasattr(result, "addCallback"):
                result = await result
            if isinstance(result, (dict, list)):
                return ctx.json(result)
            return result
        except HTTPError as error:
            for key, value in error.headers.items():
                request.setHeader(key, value)
            return ctx.error(error.status, error.error, error.details)
        except StoreUnavailable as error:
            log.warn("database unavailable for {route}: {error}", route=route_.name, error=str(error).strip())
            return ctx.fail(503, "데이터베이스에 연결할 수 없습니다. 잠시 후 다시 시도하세요.", "database unavailable",
                            "PostgreSQL cannot be reached; try again shortly")
        except Exception:
            log.failure("{route} failed", route=route_.name)
            return ctx.fail(500, "내부 오류가 발생했습니다.", "internal error", "see the ui-service log")

    handle.__name__ = route_.name
    return handle


#: What a stream says before it closes because its session ended (the 시스템 page shows it).
SESSION_ENDED = b"event: error\ndata: " + json.dumps(error_body("session ended", "log in again")).encode() + b"\n\n"


def _until_session_ends(ctx: Context, stream: Any) -> Any:
    """Run an event stream (the handler's Deferred or coroutine) until it ends by itself or
    its session ends: every ``[ui] stream_session_check_seconds`` the session is checked
    (without counting as activity, so an open stream keeps no idle session alive); once it is
    gone, the stream says so and is cancelled, which ends the handler like a browser leaving."""
    if not (hasattr(stream, "__await__") or hasattr(stream, "addCallback")):
        return stream  # answered at once (HEAD, ?once=1)
    stream = defer.ensureDeferred(stream) if not hasattr(stream, "addCallback") else stream
    accounts = ctx.uses.accounts
    closed = []

    def check() -> None:
        checked = defer.ensureDeferred(accounts.still_valid(ctx.session))

        def decided(valid: bool) -> None:
            if valid or stream.called:
                return
            log.info("{route}: the session of {user} ended; closing its stream", route=ctx.route,
                     user=ctx.user.username)
            if not ctx.request.finished and not ctx.request._disconnected:
                ctx.request.write(SESSION_ENDED)
            closed.append(True)
            stream.cancel()

        checked.addCallback(decided)
        # The database away for a moment ends no stream: the next check decides.
        checked.addErrback(lambda f: log.warn("{route}: session check failed: {error}", route=ctx.route,
                                              error=f.getErrorMessage()))

    watch = task.LoopingCall(check)
    watch.clock = ctx.ui.reactor
    watch.start(ctx.settings.stream_session_check_seconds, now=False)

    def ended(result):
        if watch.running:
            watch.stop()
        if closed and isinstance(result, Failure) and result.check(defer.CancelledError):
            return b""  # we closed it: a normal end of the response
        return result

    return stream.addBoth(ended)


def http_error_handler(ui, code: int, page_message: str, json_message: str):
    """Klein error handler for werkzeug's NotFound / MethodNotAllowed: our page or JSON, our headers."""

    def handle(request, failure):
        language = i18n.pick_language(None, _cookie(request, i18n.COOKIE))
        kind = "json" if request.path.startswith(b"/api/") or request.path == b"/health" else "page"
        ctx = Context(ui, request, "error", Rule(None, kind), None, language)
        ui.security_headers(request)
        return ctx.error(code, ctx._(page_message) if kind == "page" else json_message)

    return handle
