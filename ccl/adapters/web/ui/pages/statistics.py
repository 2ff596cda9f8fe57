"""통계: Pareto of defect types, daily trend, by customer, confidence distribution."""

from __future__ import annotations

import datetime

from ccl.adapters.web.ui.pages._data import DISPOSITION_LABEL, FORMAT, parse_date
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.ports import STATISTICS_MAX_DAYS
from ccl.domain.plant_time import plant_today

DEFAULT_DAYS = 30


def _range(ctx) -> tuple[datetime.date, datetime.date]:
    date_to = parse_date(ctx.arg("to"), "to") or plant_today(ctx.ui.clock)
    date_from = parse_date(ctx.arg("from"), "from") or date_to - datetime.timedelta(days=DEFAULT_DAYS - 1)
    if date_from > date_to:
        raise HTTPError(400, "bad range", "from is after to")
    if (date_to - date_from).days >= STATISTICS_MAX_DAYS:
        raise HTTPError(400, "bad range", f"at most {STATISTICS_MAX_DAYS} days at once")
    return date_from, date_to


@route("statistics", "/statistics")
async def statistics(ctx):
    date_from, date_to = _range(ctx)
    found = await ctx.uses.statistics.statistics(date_from, date_to)
    return ctx.render("statistics.html", found=found, date_from=date_from, date_to=date_to, fmt=FORMAT,
                      disposition_label=DISPOSITION_LABEL)


@route("statistics_data", "/api/statistics")
async def statistics_data(ctx):
    date_from, date_to = _range(ctx)
    return await ctx.uses.statistics.statistics(date_from, date_to)
