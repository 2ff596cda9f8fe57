"""실시간 모니터링: the live line view, its JSON parts and the Server-Sent Events stream.

The page paints from one query round (ui_queries.dashboard) and then follows
``/api/events`` (SSE, fed by the process's one ``LISTEN ccl_events``, see ``live.py``);
on an event the browser fetches only the part that changed from ``/api/dashboard?part=``.
"""

from __future__ import annotations

from ccl.adapters.web.ui import live
from ccl.adapters.web.ui.orchestrator import OrchestratorRefused, OrchestratorUnavailable
from ccl.adapters.web.ui.pages._data import FORMAT, SEVERITY_LABEL
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.domain.plant_time import plant_now

PARTS = ("coil", "speed", "images", "defects", "today", "links", "alerts", "services", "coil_defects")


async def _services(ctx) -> dict:
    try:
        return {"available": True, "services": await ctx.ui.orchestrator.services()}
    except (OrchestratorUnavailable, OrchestratorRefused) as error:
        return {"available": False, "services": [], "reason": str(error)}


def _after(ctx) -> int | None:
    after = ctx.arg("after") or ""
    return int(after) if after.isdigit() and len(after) < 19 else None


async def _part(ctx, part: str):
    if part == "services":
        return await _services(ctx)
    if part not in PARTS:
        raise HTTPError(400, "unknown part", {"allowed": list(PARTS)})
    return await ctx.uses.dashboard.part(part, plant_now(ctx.ui.clock), after_id=_after(ctx))


@route("dashboard", "/")
async def dashboard(ctx):
    # Service states come from the orchestrator (up to seconds when it hangs): the page
    # fetches them after it is painted (part=services), so they never slow it down.
    state = await ctx.uses.dashboard.dashboard(plant_now(ctx.ui.clock))
    return ctx.render("dashboard.html", state=state, fmt=FORMAT, severity_label=SEVERITY_LABEL,
                      weld_zone_m=ctx.settings.weld_zone_m)


@route("dashboard_data", "/api/dashboard")
async def dashboard_data(ctx):
    """The whole dashboard state, or one part of it (``?part=speed``)."""
    part = ctx.arg("part")
    if part:
        return {"part": part, "data": await _part(ctx, part)}
    return await ctx.uses.dashboard.dashboard(plant_now(ctx.ui.clock))


@route("live_events", "/api/events")
async def live_events(ctx):
    """Server-Sent Events: every ``NOTIFY ccl_events`` as an event named by its topic."""
    return await live.serve(ctx, {"user": ctx.user.username})
