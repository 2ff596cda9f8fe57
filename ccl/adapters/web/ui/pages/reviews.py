"""Operator actions on a defect: confirm, mark false positive, reclassify (with a comment).

``POST /api/defects/{id}/review`` with ``{"action": "confirm" | "false_positive" |
"reclassify", "comment": "...", "defect_type": "dent"}`` (defect_type only to reclassify, one
of the 관리 page's list). The latest state is kept on ``defect_detections``; every action is
a row of ``defect_reviews`` (``GET /api/defects/{id}/reviews``), audited, and announced with
``NOTIFY ccl_events`` ``{"table": "defect_reviews", "defect_id", "action", ...}`` so open
pages update.
"""

from __future__ import annotations

import attrs

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.application.inspection import REVIEW_STATUS as STATUS, UnknownDefect, UnknownDefectType
from ccl.ports import ReviewConflict

MAX_COMMENT = 1000


@route("defect_types", "/api/defect-types")
async def defect_types(ctx):
    return {"defect_types": list((await ctx.uses.rules.current()).defect_types)}


def _parse(body: dict) -> tuple[str, str, str | None]:
    action = body.get("action")
    if action not in STATUS:
        raise HTTPError(400, "bad action", {"allowed": list(STATUS)})
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise HTTPError(400, "bad comment", f"text of at most {MAX_COMMENT} characters")
    new_type = body.get("defect_type")
    if action == "reclassify":
        if not isinstance(new_type, str) or not new_type:
            raise HTTPError(400, "defect_type needed", "reclassify needs the new defect_type")
    elif new_type is not None:
        raise HTTPError(400, "defect_type only for reclassify")
    return action, comment.strip(), new_type


@route("defect_review", "/api/defects/<int:defect_id>/review", methods=("POST",))
async def review(ctx, defect_id):
    action, comment, new_type = _parse(ctx.json_body())
    try:
        defect, entry = await ctx.uses.reviews.review(defect_id, action, comment, new_type, ctx.actor)
    except UnknownDefectType as error:
        raise HTTPError(400, "unknown defect type", {"allowed": list(error.allowed)}) from None
    except ReviewConflict as error:
        raise HTTPError(409, "nothing to change", str(error)) from None
    except UnknownDefect:
        raise HTTPError(404, "no such defect", {"id": defect_id}) from None
    return {"defect": attrs.asdict(defect), "review": attrs.asdict(entry)}


@route("defect_reviews", "/api/defects/<int:defect_id>/reviews")
async def reviews(ctx, defect_id):
    try:
        defect, history = await ctx.uses.reviews.history(defect_id)
    except UnknownDefect:
        raise HTTPError(404, "no such defect", {"id": defect_id}) from None
    return {"defect": attrs.asdict(defect), "reviews": [attrs.asdict(entry) for entry in history]}
