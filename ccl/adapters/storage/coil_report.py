"""The coil report's and the review figures' reads (ccl/ports/reports.py), one statement each
where it can; JSON built by PostgreSQL (``ui_queries._sql.rows``)."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.defect_keys import DEFECT_BY_KEY
from ccl.adapters.storage.postgres import Database, port_errors
from ccl.adapters.storage.tracking_store import TrackingReads
from ccl.adapters.storage.ui_queries._sql import rows
from ccl.adapters.storage.ui_queries.coil import grades, periodic_series, schedules
from ccl.ports.reports import ICoilReportReads, IReviewReads, ReviewFilter

#: A coil report lists at most this many defects (the PDF's table runs to ~1,250 pages then).
MAX_REPORT_DEFECTS = 50_000

_DEFECTS = f"""
    WITH tc AS (SELECT %(tc)s::text AS tracked_coil),
    ids AS (
        SELECT t.defect_id AS id, t.defect_received_at AS received_at FROM tracking_defects t, tc
        WHERE t.tracked_coil = tc.tracked_coil
        UNION
        SELECT d.id, d.received_at FROM defect_detections d
        WHERE d.coil_number = %(c)s AND NOT EXISTS (
            SELECT 1 FROM tracking_defects t, tc WHERE t.defect_id = d.id AND t.status = 'placed'
              AND t.tracked_coil IS DISTINCT FROM tc.tracked_coil))
    SELECT d.id, d.defect_type, d.original_defect_type, d.severity, d.confidence_score, d.review_status,
           d.camera_id, d.detection_time, d.defect_position_meter AS box_metre, d.defect_size_width,
           d.defect_size_height, t.surface, t.uncertainty_m,
           CASE WHEN t.status = 'placed' AND t.tracked_coil = tc.tracked_coil THEN t.metre END AS metre,
           CASE WHEN oi.width > 0 AND d.defect_position_x IS NOT NULL
                THEN least(1.0, (d.defect_position_x + coalesce(d.defect_size_width, 0) / 2.0) / oi.width)
           END AS across,
           li.thumbnail_path AS labeled_thumb, li.path AS labeled_path,
           oi.thumbnail_path AS original_thumb, oi.path AS original_path,
           li.stored_on AS labeled_host, li.filename AS labeled_filename,
           oi.stored_on AS original_host, oi.filename AS original_filename,
           m.name || ' ' || m.version AS model, pm.series_id AS periodic_series_id
    FROM ids {DEFECT_BY_KEY.format(id="ids.id", received_at="ids.received_at")} CROSS JOIN tc
         LEFT JOIN tracking_defects t ON t.defect_id = d.id
         LEFT JOIN images oi ON oi.id = d.original_image_id AND oi.purged_at IS NULL
         LEFT JOIN images li ON li.id = d.labeled_image_id AND li.purged_at IS NULL
         LEFT JOIN ai_models m ON m.id = d.model_id
         LEFT JOIN periodic_members pm ON pm.defect_id = d.id
    ORDER BY coalesce(CASE WHEN t.status = 'placed' AND t.tracked_coil = tc.tracked_coil THEN t.metre END,
                      d.defect_position_meter), d.id
    LIMIT %(limit)s"""


@port_errors
@implementer(ICoilReportReads)
class CoilReportReads:
    def __init__(self, db: Database):
        self._db = db
        self._tracking = TrackingReads(db)

    async def coil_report(self, coil_number: str) -> dict | None:
        schedule = (await schedules(self._db, coil_number)) or [None]
        tracking = await self._tracking.coil(coil_number)
        defects = await rows(self._db, _DEFECTS, {"c": coil_number, "limit": MAX_REPORT_DEFECTS,
                                                  "tc": tracking["tracked_coil"] if tracking else None})
        if schedule[0] is None and tracking is None and not defects:
            return None
        tracked = tracking["tracked_coil"] if tracking else None
        # The grade and the series of the tracked coil this report is about (a number run
        # twice has one per pass); untracked: the newest of the number.
        graded = [g for g in await grades(self._db, coil_number) if tracked is None or g["tracked_coil"] == tracked]
        series = [s for s in await periodic_series(self._db, coil_number)
                  if tracked is None or s["tracked_coil"] == tracked]
        return {"schedule": schedule[0], "tracking": tracking, "defects": defects,
                "grade": graded[0] if graded else None, "series": series}


def _review_where(query: ReviewFilter) -> tuple[str, dict]:
    where = ["d.review_status <> 'new'"]
    params: dict = {}
    if query.since is not None:
        where.append("d.reviewed_at >= %(since)s")
        params["since"] = query.since
    if query.before is not None:
        where.append("d.reviewed_at < %(before)s")
        params["before"] = query.before
    if query.model_id is not None:
        where.append("d.model_id = %(model)s")
        params["model"] = query.model_id
    if query.defect_type is not None:
        where.append("coalesce(d.original_defect_type, d.defect_type) = %(type)s")
        params["type"] = query.defect_type
    return " AND ".join(where), params


#: What the review made of the model's label: false positive; the final type differs from the
#: model's (reclassified away, even when confirmed afterwards); else confirmed.
_OUTCOME = """CASE WHEN d.review_status = 'false_positive' THEN 'false_positive'
                   WHEN d.original_defect_type IS NOT NULL AND d.original_defect_type <> d.defect_type
                        THEN 'reclassified'
                   ELSE 'confirmed' END"""


@port_errors
@implementer(IReviewReads)
class ReviewReads:
    def __init__(self, db: Database):
        self._db = db

    def outcomes(self, query: ReviewFilter) -> defer.Deferred:
        where, params = _review_where(query)
        return rows(self._db, f"""
            SELECT d.model_id, m.name || ' ' || m.version AS model, o.model_type AS defect_type,
                   count(*) FILTER (WHERE o.outcome = 'confirmed') AS confirmed,
                   count(*) FILTER (WHERE o.outcome = 'false_positive') AS false_positive,
                   count(*) FILTER (WHERE o.outcome = 'reclassified') AS reclassified
            FROM defect_detections d LEFT JOIN ai_models m ON m.id = d.model_id,
                 LATERAL (SELECT coalesce(d.original_defect_type, d.defect_type) AS model_type,
                                 {_OUTCOME} AS outcome) o
            WHERE {where}
            GROUP BY d.model_id, m.name, m.version, o.model_type
            ORDER BY m.name NULLS LAST, m.version, d.model_id, o.model_type""", params)

    def reviewed_images(self, query: ReviewFilter, limit: int) -> defer.Deferred:
        where, params = _review_where(query)
        return rows(self._db, f"""
            SELECT d.id, d.coil_number, d.defect_type AS final_label,
                   coalesce(d.original_defect_type, d.defect_type) AS original_label, {_OUTCOME} AS outcome,
                   d.model_id, m.name AS model_name, m.version AS model_version,
                   coalesce(t.metre, d.defect_position_meter) AS metre, t.tracked_coil, d.reviewed_by, d.reviewed_at,
                   d.severity, d.confidence_score, d.defect_position_x, d.defect_position_y, d.defect_size_width,
                   d.defect_size_height, oi.path AS original_path, oi.format AS original_format,
                   li.path AS labeled_path, li.format AS labeled_format
            FROM defect_detections d LEFT JOIN ai_models m ON m.id = d.model_id
                 LEFT JOIN tracking_defects t ON t.defect_id = d.id AND t.status = 'placed'
                 LEFT JOIN images oi ON oi.id = d.original_image_id AND oi.purged_at IS NULL
                 LEFT JOIN images li ON li.id = d.labeled_image_id AND li.purged_at IS NULL
            WHERE {where} AND (oi.id IS NOT NULL OR li.id IS NOT NULL)
            ORDER BY d.reviewed_at, d.id LIMIT %(limit)s""", {**params, "limit": limit})
