"""코일 이력 (search, pages, sorting, CSV export) and the coil detail page."""

from __future__ import annotations

import csv
import io

from twisted.logger import Logger

from ccl.adapters.web.ui.pages._data import DISPOSITION_LABEL, FORMAT, REVIEW_LABEL, SEVERITY_LABEL, TRACKING_LABELS, check_coil
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.domain import coil_search
from ccl.domain.coil_report import spreadsheet_safe
from ccl.domain.plant_time import plant_now, plant_today

log = Logger()


def _search(ctx) -> coil_search.Search:
    args = {name: ctx.arg(name) for name in ("from", "to", "coil", "customer", "defect_type", "grade", "disposition",
                                             "sort", "order", "page", "size")}
    try:
        given = {k: v for k, v in args.items() if v is not None}
        return coil_search.Search.from_args(given, plant_today(ctx.ui.clock))
    except coil_search.BadSearch as error:
        raise HTTPError(400, "bad search", str(error)) from None


async def _defect_types(ctx) -> list[str]:
    return await ctx.uses.coils.defect_types()


@route("coils", "/coils")
async def coils(ctx):
    query = _search(ctx)
    found = await ctx.uses.history.search(query)
    return ctx.render("coils.html", query=query, found=found, fmt=FORMAT, defect_types=await _defect_types(ctx),
                      sortable=coil_search.SORTABLE, page_sizes=coil_search.PAGE_SIZES,
                      disposition_label=DISPOSITION_LABEL, **TRACKING_LABELS)


@route("coils_data", "/api/coils")
async def coils_data(ctx):
    query = _search(ctx)
    found = await ctx.uses.history.search(query)
    found["query"] = query.as_args()
    return found


@route("coils_csv", "/coils.csv")
async def coils_csv(ctx):
    """Every coil of the search as CSV (UTF-8 with BOM, so Excel shows the Korean), streamed
    chunk by chunk from a server-side cursor. A failure on the way aborts the download."""
    query = _search(ctx)
    request = ctx.request
    request.setHeader(b"content-type", b"text/csv; charset=utf-8")
    name = f"coils_{query.date_from:%Y%m%d}-{query.date_to:%Y%m%d}.csv"
    request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode("ascii"))
    request.setHeader(b"cache-control", b"no-store")
    gone = []
    request.notifyFinish().addBoth(lambda _: gone.append(True))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(coil_search.CSV_COLUMNS)
    request.write(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))

    def write_rows(batch) -> bool:
        if gone:
            return False
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([[spreadsheet_safe(v) for v in row] for row in batch])
        request.write(buffer.getvalue().encode("utf-8"))
        return True

    try:
        written = await ctx.uses.history.stream_export(query, write_rows)
    except Exception as error:
        # The status line and part of the file are out: no error page can follow. Ending the
        # chunked body without its last chunk makes the browser report a failed download
        # instead of keeping a file that looks whole.
        log.warn("CSV export for {user} failed, download aborted: {error}", user=ctx.user.username,
                 error=str(error).strip() or type(error).__name__)
        await _abort(request)
        return b""
    log.info("CSV export of {rows} coils for {user}", rows=written, user=ctx.user.username)
    return b""


async def _abort(request) -> None:
    """Drop the connection and wait until it is gone (Klein then finishes nothing)."""
    if request.finished or request._disconnected:
        return
    lost = request.notifyFinish()
    request.transport.abortConnection()
    try:
        await lost
    except Exception:  # the connection's loss is what we wait for; Klein may cancel the wait too
        pass


@route("coil_detail", "/coils/<coil>")
async def coil_detail(ctx, coil):
    check_coil(coil)
    detail = await ctx.uses.coils.coil_detail(coil, plant_now(ctx.ui.clock))
    if not (detail["schedules"] or detail["events"] or detail["defects"] or detail["images"]):
        raise HTTPError(404, ctx._("알 수 없는 코일입니다."), coil)
    can_review = ctx.user.role in ("admin", "operator")
    book = await ctx.uses.grading.book() if can_review and detail["grades"] else None
    return ctx.render("coil.html", coil=coil, detail=detail, fmt=FORMAT, severity_label=SEVERITY_LABEL,
                      review_label=REVIEW_LABEL, can_review=can_review,
                      defect_types=await _defect_types(ctx) if can_review else [],
                      weld_zone_m=ctx.settings.weld_zone_m, disposition_label=DISPOSITION_LABEL,
                      dispositions=list(DISPOSITION_LABEL),
                      grade_names=list(book.document.get("grades", [])) if book else [], **TRACKING_LABELS)


@route("coil_data", "/api/coils/<coil>")
async def coil_data(ctx, coil):
    check_coil(coil)
    detail = await ctx.uses.coils.coil_detail(coil, plant_now(ctx.ui.clock))
    if not (detail["schedules"] or detail["events"] or detail["defects"] or detail["images"]):
        raise HTTPError(404, "no such coil", coil)
    return detail
