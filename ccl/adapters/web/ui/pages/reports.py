"""The coil report (``/coils/{coil}/report.pdf``), a coil's defects as CSV, the accuracy
figures from reviews (``/api/models/accuracy``) and the training export of reviewed images
(``/models/training-export.zip``). The work is the use cases' (ccl/application/reports.py):
the PDF is drawn and the zip packed in threads; this module reads arguments and sends files."""

from __future__ import annotations

import datetime
import os

import attrs
from twisted.logger import Logger
from twisted.protocols.basic import FileSender

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.pages._data import check_coil, parse_date
from ccl.adapters.web.ui.routing import route
from ccl.application.reports import InvalidCoilNumber, NoSuchCoil
from ccl.domain.telegrams import PLANT_TZ
from ccl.ports.reports import ReviewFilter

log = Logger()

#: The longest period of the accuracy figures and the training export, in days.
MAX_PERIOD_DAYS = 3660


def _attachment(ctx, content_type: bytes, name: str) -> None:
    ctx.request.setHeader(b"content-type", content_type)
    ctx.request.setHeader(b"content-disposition", f'attachment; filename="{name}"'.encode("ascii"))
    ctx.request.setHeader(b"cache-control", b"no-store")


async def _coil_file(ctx, coil: str, make) -> bytes:
    check_coil(coil)
    try:
        return await make(coil)
    except (NoSuchCoil, InvalidCoilNumber):
        raise HTTPError(404, "no such coil", f"nothing is known of coil {coil}: no schedule, tracking or defect") from None


@route("coil_report_pdf", "/coils/<coil>/report.pdf")
async def coil_report_pdf(ctx, coil):
    """The coil's report as a PDF (drawn in a thread)."""
    data = await _coil_file(ctx, coil, ctx.uses.reports.pdf)
    _attachment(ctx, b"application/pdf", f"coil_{coil}_report.pdf")
    log.info("coil report {coil} for {user}: {size} bytes", coil=coil, user=ctx.user.username, size=len(data))
    return data


@route("coil_defects_csv", "/coils/<coil>/defects.csv")
async def coil_defects_csv(ctx, coil):
    """The coil's defects as CSV (UTF-8 with BOM, Korean headers)."""
    data = await _coil_file(ctx, coil, ctx.uses.reports.csv)
    _attachment(ctx, b"text/csv; charset=utf-8", f"coil_{coil}_defects.csv")
    return data


def review_filter(ctx) -> ReviewFilter:
    """``from``/``to`` (plant days, both included), ``model`` (id) and ``type`` of the query."""
    first, last = parse_date(ctx.arg("from"), "from"), parse_date(ctx.arg("to"), "to")
    if first and last and last < first:
        raise HTTPError(400, "bad period", "'to' is before 'from'")
    if first and last and (last - first).days >= MAX_PERIOD_DAYS:
        raise HTTPError(400, "bad period", f"at most {MAX_PERIOD_DAYS} days")
    model = (ctx.arg("model") or "").strip()
    if model and not model.isdigit():
        raise HTTPError(400, "bad model", f"expected a model id, got {model!r}")
    kind = (ctx.arg("type") or "").strip()
    if len(kind) > 64:
        raise HTTPError(400, "bad type", "a defect type has at most 64 characters")

    def midnight(day: datetime.date) -> datetime.datetime:
        return datetime.datetime.combine(day, datetime.time(), PLANT_TZ)

    return ReviewFilter(since=midnight(first) if first else None,
                        before=midnight(last + datetime.timedelta(days=1)) if last else None,
                        model_id=int(model) if model else None, defect_type=kind or None)


@route("models_accuracy", "/api/models/accuracy")
async def models_accuracy(ctx):
    """Precision per model and defect type from the reviews (same filters as the export)."""
    query = review_filter(ctx)
    figures = await ctx.uses.accuracy.figures(query)
    return {"figures": [{**attrs.asdict(p), "reviews": p.reviews, "too_few": p.too_few} for p in figures],
            "min_reviews": ctx.settings.report.accuracy_min_reviews}


@route("training_export", "/models/training-export.zip")
async def training_export(ctx):
    """Reviewed images with their final labels and a manifest, packed into a temporary file in a
    thread and streamed from disk; audited as training.export."""
    query = review_filter(ctx)
    path, count = await ctx.uses.training.export(query, ctx.actor)
    request = ctx.request
    try:
        handle = open(path, "rb")
    finally:
        os.unlink(path)  # the open handle keeps the data until the transfer is done
    with handle:
        size = os.fstat(handle.fileno()).st_size
        stamp = datetime.datetime.fromtimestamp(ctx.ui.clock.seconds(), PLANT_TZ).strftime("%Y%m%d-%H%M")
        _attachment(ctx, b"application/zip", f"ccl_training_{stamp}.zip")
        request.setHeader(b"content-length", str(size).encode("ascii"))
        log.info("training export for {user}: {count} defects, {size} bytes", user=ctx.user.username, count=count,
                 size=size)
        try:
            await FileSender().beginFileTransfer(handle, request)
        except Exception as error:  # the browser went away: nothing more to send
            log.info("training export for {user} stopped: {error}", user=ctx.user.username, error=error)
    return b""
