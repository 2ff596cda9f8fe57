"""Who may use which route of the web UI: the ONE table of route x role.

Every route of the UI is declared with :func:`ccl.adapters.web.ui.routing.route` under a
name, and that name must be a key of :data:`ACCESS` (the declaration fails at import time
otherwise). The request wrapper in ``routing.py`` enforces the entry on every request, on
the server, before the handler runs:

- ``roles is PUBLIC``: no session needed (login page, /health, static files).
- no valid session: a ``page`` redirects to ``/login?next=...``; ``json``/``sse`` answer
  401 ``{"error": "login required", ...}``.
- a session whose role is not in ``roles``: 403 (page or JSON, by ``kind``).
- any method other than GET/HEAD also needs the session's CSRF token, as the form field
  ``csrf_token`` or the header ``X-CSRF-Token``; without it: 403 (page or JSON).

How to add a page (for everyone building on this UI)
----------------------------------------------------
1. Add a line here: ``"coil_detail": Rule(ALL, "page"),`` (name -> allowed roles, kind).
   Kinds: ``page`` (HTML), ``json`` (JSON API), ``sse`` (Server-Sent Events stream),
   ``file`` (files, e.g. images: errors as JSON, no session looked up when PUBLIC).
2. Write the handler in a module of ``ccl/adapters/web/ui/pages/`` and declare it::

       from ccl.adapters.web.ui.routing import route

       @route("coil_detail", "/coils/<coil>")
       async def coil_detail(ctx, coil):
           detail = await ctx.uses.coils.coil_detail(coil)
           return ctx.render("coil_detail.html", coil=coil, detail=detail)

   ``ctx`` is a :class:`ccl.adapters.web.ui.routing.Context`: ``ctx.request``, ``ctx.user``
   (``username``, ``role``, ``display_name``), ``ctx.actor`` (who acts, for use cases that
   audit), ``ctx.csrf_token``, ``ctx.uses`` (the use cases and read ports, see ``uses.py``: a
   page never talks to the database; a new read or write gets a port in ``ccl/ports/``, its
   storage adapter, and a field of ``UseCases`` wired in ``ccl/services/ui.py``),
   ``ctx.settings`` (``UISettings``), ``ctx.ui`` (the app), ``ctx.render(template, **values)``,
   ``ctx.json(value, code=200)``, ``ctx.error(code, message, details=None)`` (JSON or page by
   the route's kind; or raise ``ccl.adapters.web.errors.HTTPError(status, error, details)``),
   ``ctx.redirect(path)``, ``ctx.audit(action, target, result, details)``,
   ``ctx.arg(name, default)`` (one query/form argument as text), ``ctx.json_body()``.
   Return a string (HTML), bytes, or a dict/list (sent as JSON) from the handler.
3. Add the module name to ``PAGE_MODULES`` in ``ccl/adapters/web/ui/app.py``.
4. Template in ``web/templates/``: ``{% extends "base.html" %}`` and fill ``{% block content %}``
   (and ``{% block scripts %}`` for ``<script src="/static/...">``: the Content-Security-Policy
   allows scripts from /static only, no inline script; pass data with ``data-`` attributes or a
   ``<script type="application/json">`` block). Labels in Korean through ``{{ _("코일 이력") }}``;
   add the English to ``ccl/adapters/web/ui/i18n.py``. JavaScript calls JSON endpoints with
   ``ccl.api(url, {method, body})`` from ``/static/js/ccl.js``, which sends the CSRF header.
5. Add the route's sample request to ``tests/test_ui_access.py`` (``SAMPLES``): the test module
   makes one test per cell of this table (each role and no session) and fails when a route has
   no sample.
6. A page of the navigation bar goes into ``NAV`` below (path, label, who sees the link).
"""

from __future__ import annotations

import attrs

ADMIN = frozenset({"admin"})
STAFF = frozenset({"admin", "operator"})
ALL = frozenset({"admin", "operator", "viewer"})
PUBLIC = None

KINDS = ("page", "json", "sse", "file")


@attrs.frozen
class Rule:
    roles: frozenset[str] | None
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))


#: route name -> who may call it. The single source of truth for authorisation.
ACCESS: dict[str, Rule] = {
    # framework
    "health": Rule(PUBLIC, "json"),
    "static": Rule(PUBLIC, "file"),
    "login": Rule(PUBLIC, "page"),
    "login_submit": Rule(PUBLIC, "page"),
    "logout": Rule(ALL, "page"),
    "whoami": Rule(ALL, "json"),
    # 실시간 모니터링
    "dashboard": Rule(ALL, "page"),
    "dashboard_data": Rule(ALL, "json"),
    "live_events": Rule(ALL, "sse"),
    # 코일 이력 and coil detail (images by database id)
    "coils": Rule(ALL, "page"),
    "coils_data": Rule(ALL, "json"),
    "coils_csv": Rule(ALL, "page"),
    "coil_detail": Rule(ALL, "page"),
    "coil_data": Rule(ALL, "json"),
    # the coil report (PDF) and its defects as CSV: like the coil page
    "coil_report_pdf": Rule(ALL, "file"),
    "coil_defects_csv": Rule(ALL, "file"),
    "image_file": Rule(ALL, "file"),
    "image_thumb": Rule(ALL, "file"),
    "image_info": Rule(ALL, "json"),
    # 라인 추적 (coil tracking: delay log, coil-number disagreements)
    "tracking": Rule(ALL, "page"),
    "tracking_data": Rule(ALL, "json"),
    # 통계
    "statistics": Rule(ALL, "page"),
    "statistics_data": Rule(ALL, "json"),
    # AI 모델
    "models": Rule(ALL, "page"),
    "models_data": Rule(ALL, "json"),
    "model_deploy": Rule(ADMIN, "json"),
    "model_register": Rule(ADMIN, "page"),
    "models_accuracy": Rule(ALL, "json"),
    # reviewed images with their final labels, for retraining (engineers: operators and admins; audited)
    "training_export": Rule(STAFF, "file"),
    # 시스템
    "system": Rule(ALL, "page"),
    "system_services": Rule(ALL, "json"),
    "system_service_action": Rule(ADMIN, "json"),
    "system_logs": Rule(STAFF, "json"),
    "system_logs_stream": Rule(STAFF, "sse"),
    "alerts_list": Rule(ALL, "json"),
    "alert_ack": Rule(STAFF, "json"),
    # 관리
    "admin_users": Rule(ADMIN, "page"),
    "admin_user_create": Rule(ADMIN, "page"),
    "admin_user_update": Rule(ADMIN, "page"),
    "admin_user_reset": Rule(ADMIN, "page"),
    "admin_audit": Rule(ADMIN, "page"),
    "admin_settings": Rule(ADMIN, "page"),
    "admin_settings_save": Rule(ADMIN, "page"),
    # 관리 > 품질: grading rule book (versioned, with a preview), rolls, alarm rules
    "admin_quality": Rule(ADMIN, "page"),
    "rule_book_preview": Rule(ADMIN, "json"),
    "rule_book_save": Rule(ADMIN, "json"),
    "rule_books": Rule(ADMIN, "json"),
    "roll_save": Rule(ADMIN, "page"),
    "roll_delete": Rule(ADMIN, "page"),
    "alarm_rules_save": Rule(ADMIN, "page"),
    # 통신 진단: refused telegrams (process data: everyone), 고기원 dead letters (sending one again: admins)
    "diagnostics": Rule(ALL, "page"),
    "rejected_telegrams": Rule(ALL, "page"),
    "rejected_telegram": Rule(ALL, "page"),
    "dead_letters": Rule(ALL, "page"),
    "dead_letter": Rule(ALL, "page"),
    "dead_letter_resend": Rule(ADMIN, "page"),
    # operator actions on a defect
    "defect_review": Rule(STAFF, "json"),
    "defect_reviews": Rule(ALL, "json"),
    "defect_types": Rule(ALL, "json"),
    # a coil's grade overridden, with a reason (audited)
    "coil_grade_override": Rule(STAFF, "json"),
}


@attrs.frozen
class NavItem:
    route: str
    path: str
    label: str  # Korean; English in i18n.py


#: The navigation bar, in order. A link is shown to the roles its route allows.
NAV: tuple[NavItem, ...] = (
    NavItem("dashboard", "/", "실시간 모니터링"),
    NavItem("coils", "/coils", "코일 이력"),
    NavItem("tracking", "/tracking", "라인 추적"),
    NavItem("statistics", "/statistics", "통계"),
    NavItem("models", "/models", "AI 모델"),
    NavItem("system", "/system", "시스템"),
    NavItem("diagnostics", "/diagnostics", "통신 진단"),
    NavItem("admin_users", "/admin/users", "관리"),
)


def allowed(route: str, role: str | None) -> bool:
    """May a user of ``role`` (None: no session) use ``route``?"""
    rule = ACCESS[route]
    if rule.roles is PUBLIC:
        return True
    return role is not None and role in rule.roles


def nav_for(role: str | None) -> list[NavItem]:
    """Links this role may follow; links to routes not registered yet are left out by the caller."""
    return [item for item in NAV if item.route in ACCESS and allowed(item.route, role)]
