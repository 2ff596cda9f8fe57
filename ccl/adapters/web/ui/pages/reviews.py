"""Operator actions on a defect: confirm, mark false positive, reclassify (with a comment).

``POST /api/defects/{id}/review`` with ``{"action": "confirm" | "false_positive" |
"reclassify", "comment": "...", "defect_type": "dent"}`` (defect_type only to reclassify, one
of the 관리 page's list). The latest state is kept on ``defect_detections``; every action is
a row of ``defect_reviews`` (``GET /api/defects/{id}/reviews``), audited, and announced with
``NOTIFY ccl_events`` ``{"table": "defect_reviews", "defect_id", "action", ...}`` so open
pages update.
"""

from __future__ import annotations

import json

from twisted.internet import defer

from ccl.adapters.storage.postgres import notify_sql
from ccl.adapters.web.ui.pages.admin import current_settings
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route

STATUS = {"confirm": "confirmed", "false_positive": "false_positive", "reclassify": "reclassified"}
MAX_COMMENT = 1000
_DEFECT = ("id", "coil_number", "defect_type", "original_defect_type", "review_status", "reviewed_by", "reviewed_at",
           "review_comment")
_REVIEW = ("id", "action", "previous_status", "from_type", "to_type", "comment", "reviewed_by", "reviewed_at")


class _Conflict(Exception):
    pass


@route("defect_types", "/api/defect-types")
async def defect_types(ctx):
    return {"defect_types": list((await current_settings(ctx.db)).defect_types)}


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
    if new_type is not None:
        allowed = (await current_settings(ctx.db)).defect_types
        if new_type not in allowed:
            raise HTTPError(400, "unknown defect type", {"allowed": list(allowed)})
    username = ctx.user.username

    @defer.inlineCallbacks
    def apply(cursor):
        yield cursor.execute("SELECT defect_type, review_status, coil_number FROM defect_detections WHERE id = %s"
                             " FOR UPDATE", (defect_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        current_type, previous_status, coil = row
        if action == "reclassify" and new_type == current_type:
            raise _Conflict(f"the defect is already of type {current_type!r}")
        to_type = new_type if action == "reclassify" else current_type
        yield cursor.execute(
            "UPDATE defect_detections SET review_status = %s, reviewed_by = %s, reviewed_at = now(),"
            " review_comment = %s, defect_type = %s,"
            " original_defect_type = CASE WHEN %s THEN COALESCE(original_defect_type, defect_type)"
            "                        ELSE original_defect_type END"
            f" WHERE id = %s RETURNING {', '.join(_DEFECT)}",
            (STATUS[action], username, comment, to_type, action == "reclassify", defect_id))
        defect = dict(zip(_DEFECT, cursor.fetchone()))
        yield cursor.execute(
            "INSERT INTO defect_reviews (defect_id, action, previous_status, from_type, to_type, comment, reviewed_by)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {', '.join(_REVIEW)}",
            (defect_id, action, previous_status, current_type, to_type, comment, username))
        entry = dict(zip(_REVIEW, cursor.fetchone()))
        yield cursor.execute(notify_sql(), (json.dumps({
            "table": "defect_reviews", "id": entry["id"], "defect_id": defect_id, "coil_number": coil,
            "action": action, "review_status": defect["review_status"], "defect_type": to_type,
            "reviewed_by": username}, ensure_ascii=False),))
        return defect, entry

    try:
        outcome = await ctx.db.runInteraction(apply)
    except _Conflict as error:
        raise HTTPError(409, "nothing to change", str(error)) from None
    if outcome is None:
        raise HTTPError(404, "no such defect", {"id": defect_id})
    defect, entry = outcome
    await ctx.audit("defect.review", str(defect_id), "ok",
                    {"action": action, "from_type": entry["from_type"], "to_type": entry["to_type"],
                     "previous_status": entry["previous_status"], "comment": comment})
    return {"defect": defect, "review": entry}


@route("defect_reviews", "/api/defects/<int:defect_id>/reviews")
async def reviews(ctx, defect_id):
    rows = await ctx.db.runQuery(f"SELECT {', '.join(_DEFECT)} FROM defect_detections WHERE id = %s", (defect_id,))
    if not rows:
        raise HTTPError(404, "no such defect", {"id": defect_id})
    history = await ctx.db.runQuery(
        f"SELECT {', '.join(_REVIEW)} FROM defect_reviews WHERE defect_id = %s ORDER BY reviewed_at, id", (defect_id,))
    return {"defect": dict(zip(_DEFECT, rows[0])), "reviews": [dict(zip(_REVIEW, row)) for row in history]}
