"""실시간 모니터링: a placeholder page at ``/`` until the dashboard module replaces it."""

from __future__ import annotations

from ccl.adapters.web.ui.routing import route


@route("dashboard", "/")
def dashboard(ctx):
    return ctx.render("dashboard.html")
