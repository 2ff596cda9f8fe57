"""라인 추적: the line's delay log (stops, gaps in the speed data) and the coil-number
disagreements coil tracking flagged (a box's coil number that is neither the tracked nor the
exit coil), for a range of plant days. Read through ``ITrackingReads`` (docs/tracking.md)."""

from __future__ import annotations

import datetime

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.pages._data import FORMAT, TRACKING_LABELS, parse_date
from ccl.adapters.web.ui.routing import route
from ccl.domain.plant_time import plant_today
from ccl.domain.telegrams import PLANT_TZ

#: The longest range one request reads (the delay log and the disagreements are short lists).
MAX_DAYS = 31


def _range(ctx) -> tuple[datetime.date, datetime.date]:
    date_to = parse_date(ctx.arg("to"), "to") or plant_today(ctx.ui.clock)
    date_from = parse_date(ctx.arg("from"), "from") or date_to
    if date_from > date_to:
        raise HTTPError(400, "bad range", "from is after to")
    if (date_to - date_from).days >= MAX_DAYS:
        raise HTTPError(400, "bad range", f"at most {MAX_DAYS} days at once")
    return date_from, date_to


def _seconds(day: datetime.date) -> float:
    """The start of a plant day, in seconds since the epoch."""
    return datetime.datetime.combine(day, datetime.time(), PLANT_TZ).timestamp()


async def _read(ctx) -> dict:
    date_from, date_to = _range(ctx)
    since, until = _seconds(date_from), _seconds(date_to + datetime.timedelta(days=1))
    tracking = ctx.uses.tracking
    return {"from": date_from.isoformat(), "to": date_to.isoformat(),
            "delays": await tracking.delays(since, until), "disagreements": await tracking.disagreements(since, until)}


@route("tracking", "/tracking")
async def tracking(ctx):
    found = await _read(ctx)
    return ctx.render("tracking.html", found=found, fmt=FORMAT, **TRACKING_LABELS)


@route("tracking_data", "/api/tracking")
async def tracking_data(ctx):
    return await _read(ctx)
