"""시스템: the orchestrator's services (start/stop/restart), their logs, the host figures, the alerts.

Everything about services goes through the orchestrator's control API; when it cannot be
reached the page says so and the JSON endpoints answer 503 with the reason (never a 500).
Alerts are read and acknowledged through their use case (the ``alerts`` table), so they
work even while the orchestrator is down.
"""

from __future__ import annotations

import json
import re

import attrs

from twisted.internet import defer
from twisted.logger import Logger

from ccl.adapters.web.ui.host_figures import host_view
from ccl.adapters.web.ui.orchestrator import ACTIONS, OrchestratorRefused, OrchestratorUnavailable
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.application.alerts import AlreadyAcknowledged, UnknownAlert
from ccl.ports import ALERT_STATES

log = Logger()

SERVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_LINES = 5000
DEFAULT_LINES = 200
PAST_ALERTS = 100

def _service_id(value: str) -> str:
    if not SERVICE_ID.match(value or ""):
        raise HTTPError(400, "bad service id", "1-64 characters of A-Z a-z 0-9 . _ -")
    return value


def _unreachable(ctx, error: Exception):
    return ctx.error(503, "orchestrator unreachable", str(error))


def _alerts(ctx, state: str, limit: int = PAST_ALERTS) -> defer.Deferred:
    return ctx.uses.alerts.alerts(state, limit)


@route("system", "/system")
async def system_page(ctx):
    # The alerts are read while the orchestrator is asked, not after.
    alerts = defer.gatherResults([_alerts(ctx, "open"), _alerts(ctx, "past")], consumeErrors=True)
    alerts.addErrback(lambda f: f.value.subFailure.raiseException())
    overview, problem = {"services": [], "host": None}, None
    try:
        overview = await ctx.ui.orchestrator.overview()
    except (OrchestratorUnavailable, OrchestratorRefused) as error:
        problem = str(error)
    open_alerts, past_alerts = await alerts
    return ctx.render("system.html", services=overview["services"], host=host_view(overview["host"]), problem=problem,
                      orchestrator_url=ctx.ui.orchestrator.base_url, open_alerts=open_alerts, past_alerts=past_alerts,
                      can_control=ctx.user.role == "admin", can_ack=ctx.user.role in ("admin", "operator"),
                      can_logs=ctx.user.role in ("admin", "operator"))


@route("system_services", "/api/system/services")
async def services(ctx):
    try:
        overview = await ctx.ui.orchestrator.overview()
    except OrchestratorUnavailable as error:
        return _unreachable(ctx, error)
    except OrchestratorRefused as error:
        return ctx.error(502, "orchestrator refused", error.body)
    return dict(overview, host_view=host_view(overview["host"]))


@route("system_service_action", "/api/system/services/<service>/<action>", methods=("POST",))
async def service_action(ctx, service, action):
    service = _service_id(service)
    if action not in ACTIONS:
        raise HTTPError(404, "unknown action", {"allowed": list(ACTIONS)})
    try:
        answer = await ctx.ui.orchestrator.action(action, service, ctx.user.username)
    except OrchestratorUnavailable as error:
        await ctx.audit(f"service.{action}", service, "unreachable", {"error": str(error)})
        return _unreachable(ctx, error)
    except OrchestratorRefused as error:
        await ctx.audit(f"service.{action}", service, f"refused {error.code}", {"answer": error.body})
        return ctx.error(404 if error.code == 404 else 502, "orchestrator refused", {"code": error.code,
                                                                                   "answer": error.body})
    result = answer.get("result", "ok") if isinstance(answer, dict) else "ok"
    await ctx.audit(f"service.{action}", service, str(result))
    return {"service": service, "action": action, "result": result, "answer": answer}


def _lines(ctx) -> int:
    text = ctx.arg("lines", str(DEFAULT_LINES))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LINES:
        raise HTTPError(400, "bad lines", f"lines must be a whole number from 1 to {MAX_LINES}")
    return int(text)


@route("system_logs", "/api/system/services/<service>/logs")
async def logs(ctx, service):
    service = _service_id(service)
    lines = _lines(ctx)
    try:
        return {"service": service, "lines": await ctx.ui.orchestrator.logs(service, lines, ctx.user.username)}
    except OrchestratorUnavailable as error:
        return _unreachable(ctx, error)
    except OrchestratorRefused as error:
        return ctx.error(404 if error.code == 404 else 502, "orchestrator refused", error.body)


@route("system_logs_stream", "/api/system/services/<service>/logs/stream")
def logs_stream(ctx, service):
    """Server-Sent Events relayed from the orchestrator's ``?follow=1``; ends when either side goes."""
    service = _service_id(service)
    request = ctx.request
    request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-accel-buffering", b"no")
    request.write(b"retry: 5000\n\n")
    relay = defer.ensureDeferred(ctx.ui.orchestrator.follow(service, request.write, ctx.user.username))

    def ended(result):
        if hasattr(result, "check") and result.check(defer.CancelledError):
            return None  # the browser went away
        if hasattr(result, "value"):
            reason = str(result.value) if isinstance(result.value, OrchestratorUnavailable) else "orchestrator refused"
            if isinstance(result.value, OrchestratorRefused):
                reason = f"orchestrator answered {result.value.code}"
            request.write(b"event: error\ndata: " + json.dumps({"error": reason}).encode() + b"\n\n")
        else:
            request.write(b"event: end\ndata: {}\n\n")
        return None  # Klein finishes the response

    relay.addBoth(ended)
    # Klein cancels what we return when the browser goes away: stop the relay with it.
    done = defer.Deferred(canceller=lambda _: relay.cancel())
    relay.addBoth(lambda _: done.callback(None) if not done.called else None)
    return done


@route("alerts_list", "/api/alerts")
async def alerts_list(ctx):
    state = ctx.arg("state", "open")
    if state not in ALERT_STATES:
        raise HTTPError(400, "bad state", "state is open, past or all")
    limit = ctx.arg("limit", str(PAST_ALERTS))
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise HTTPError(400, "bad limit", "limit is 1-1000")
    return {"alerts": [attrs.asdict(alert) for alert in await _alerts(ctx, state, int(limit))]}


@route("alert_ack", "/api/alerts/<int:alert_id>/ack", methods=("POST",))
async def alert_ack(ctx, alert_id):
    try:
        alert = await ctx.uses.alerts.acknowledge(alert_id, ctx.actor)
    except UnknownAlert:
        raise HTTPError(404, "no such alert", {"id": alert_id}) from None
    except AlreadyAcknowledged as error:
        return ctx.error(409, "already acknowledged", {"id": alert_id, "by": error.by})
    return {"alert": attrs.asdict(alert)}
