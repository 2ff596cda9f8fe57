"""The UI application: one Klein app per ``UI`` instance, built from the declared routes.

``UI(reactor, settings, uses)`` (built by ccl/services/ui.py) collects the routes declared in
the page modules listed in :data:`PAGE_MODULES` (see ``access.py``), wraps each with the
access guard in its own Klein app and serves ``web/static/`` under ``/static/``. Handlers
reach the use cases and read ports as ``ctx.uses`` (uses.py), the settings as ``ctx.settings``.
"""

from __future__ import annotations

import importlib
from urllib.parse import parse_qsl, urlencode

import jinja2
from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.web.ui import i18n
from ccl.adapters.web.ui.orchestrator import OrchestratorClient
from ccl.adapters.web.ui.routing import Route, collect_routes, guarded, http_error_handler
from ccl.adapters.web.ui.settings import UISettings
from ccl.adapters.web.ui.uses import UseCases

log = Logger()

#: Modules whose declared routes make up the UI. Add yours here.
PAGE_MODULES = (
    "ccl.adapters.web.ui.pages.framework",
    "ccl.adapters.web.ui.pages.dashboard",
    "ccl.adapters.web.ui.pages.coils",
    "ccl.adapters.web.ui.pages.tracking",
    "ccl.adapters.web.ui.pages.images",
    "ccl.adapters.web.ui.pages.statistics",
    "ccl.adapters.web.ui.pages.models",
    "ccl.adapters.web.ui.pages.reports",
    "ccl.adapters.web.ui.pages.system",
    "ccl.adapters.web.ui.pages.admin",
    "ccl.adapters.web.ui.pages.reviews",
    "ccl.adapters.web.ui.pages.diagnostics",
    "ccl.adapters.web.ui.pages.quality",
)

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:;"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def declared_routes() -> tuple[Route, ...]:
    """Every route of the page modules, in order (a fresh table on each call)."""
    return collect_routes(importlib.import_module(module) for module in PAGE_MODULES)


class UI:
    def __init__(self, reactor, settings: UISettings, uses: UseCases, clock=None):
        self.reactor = reactor
        #: What the pages take as the present (today's counts, default date ranges): the
        #: reactor, or a test's fixed clock (anything with ``seconds()``).
        self.clock = reactor if clock is None else clock
        self.settings = settings
        self.uses = uses
        self.web = settings.web_root
        self.sessions = uses.accounts
        self.orchestrator = OrchestratorClient(reactor, settings.orchestrator_url, settings.orchestrator_token,
                                               ca_file=settings.tls_ca_file)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.web / "templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["datetime"] = _format_datetime
        self.routes = declared_routes()
        self.route_names = frozenset(r.name for r in self.routes)
        self.app = Klein()
        for route_ in self.routes:
            self.app.route(route_.path, methods=list(route_.methods), endpoint=route_.name,
                           branch=route_.branch)(guarded(self, route_))
        self.app.handle_errors(NotFound)(http_error_handler(self, 404, "페이지를 찾을 수 없습니다.", "not found"))
        self.app.handle_errors(MethodNotAllowed)(http_error_handler(self, 405, "허용되지 않는 요청 방식입니다.", "method not allowed"))

    def resource(self):
        return self.app.resource()

    def cookie_secure(self, request) -> bool:
        return self.settings.secure_cookie == "always" or request.isSecure()

    def security_headers(self, request) -> None:
        request.setHeader(b"content-security-policy", _CSP.encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"referrer-policy", b"same-origin")

    def render(self, template: str, ctx, **values) -> str:
        user = ctx.user
        return self.templates.get_template(template).render(
            _=i18n.translator(ctx.language),
            lang=ctx.language,
            user=user,
            csrf_token=ctx.csrf_token,
            nav=ctx.nav(),
            current_route=ctx.route,
            current_path=ctx.request.path.decode("utf-8", errors="replace"),
            role_label={"admin": "관리자", "operator": "운영자", "viewer": "조회자"},
            lang_url=_lang_url(ctx.request),
            **values,
        )


def _lang_url(request):
    """The current GET address with ``lang`` set: switching language keeps filters and page."""
    path, _, query = request.uri.decode("utf-8", errors="replace").partition("?")
    if request.method != b"GET":
        path, query = "", ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "lang"]
    return lambda language: f"{path}?{urlencode([*pairs, ('lang', language)])}"


def _format_datetime(value, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None:
        return ""
    try:
        from zoneinfo import ZoneInfo
        return value.astimezone(ZoneInfo("Asia/Seoul")).strftime(pattern)
    except (AttributeError, ValueError):
        return str(value)
