"""Read queries of the live dashboard (실시간 모니터링)."""

from __future__ import annotations

import datetime

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, gather, one, rows

# The schedule columns a page shows for a coil: the latest TC 4000 row of that coil.
SCHEDULE_COLUMNS = """s.id AS schedule_id, s.received_at AS schedule_received_at, s.mo_number, s.product_group,
    s.material_code, s.customer_name, s.ccl_bom, s.thickness, s.width, s.weight, s.length_value,
    s.through_plate, s.sequence_order"""

_LATEST_SCHEDULE = f"""LEFT JOIN LATERAL (
    SELECT {SCHEDULE_COLUMNS} FROM tc_4000_schedule s
    WHERE s.coil_number = w.coil_number ORDER BY s.received_at DESC, s.id DESC LIMIT 1
) s ON true"""


def current_coil(db) -> defer.Deferred:
    """The coil whose WPD pass (TC 4002) came last, with its latest schedule; None before any."""
    return one(db, f"""
        SELECT w.coil_number, w.received_at AS wpd_at, s.*
        FROM (SELECT coil_number, received_at FROM tc_4002_wpd ORDER BY received_at DESC, id DESC LIMIT 1) w
        {_LATEST_SCHEDULE}""")


def line_speed(db, now: datetime.datetime, minutes: int = 30, after_id: int | None = None) -> defer.Deferred:
    """Line speed points {id, t (received_at), v (line_speed)} of the ``minutes`` before ``now``,
    oldest first; with ``after_id`` only the points stored after that one."""
    return rows(db, """
        SELECT id, received_at AS t, line_speed AS v FROM tc_4003_speed
        WHERE received_at > %s - make_interval(mins => %s) AND id > %s ORDER BY received_at, id""",
        (now, minutes, after_id or 0))


_IMAGE_COLUMNS = "id, coil_number, kind, filename, width, height, format, captured_at, camera_id, pair_id"


def latest_image_pair(db) -> defer.Deferred:
    """The newest original image and the labeled image stored with it: {"original", "labeled"}."""
    return one(db, f"""
        SELECT row_to_json(o) AS original, (
            SELECT row_to_json(l) FROM (
                SELECT {_IMAGE_COLUMNS} FROM images l
                WHERE l.kind = 'labeled' AND l.purged_at IS NULL
                  AND (l.pair_id = o.id OR l.id = o.pair_id OR (o.pair_id IS NOT NULL AND l.pair_id = o.pair_id)
                       OR (l.coil_number = o.coil_number AND l.captured_at = o.captured_at))
                ORDER BY l.id LIMIT 1) l
        ) AS labeled
        FROM (SELECT {_IMAGE_COLUMNS} FROM images
              WHERE kind = 'original' AND purged_at IS NULL ORDER BY captured_at DESC, id DESC LIMIT 1) o""")


DEFECT_COLUMNS = """d.id, d.coil_number, d.defect_type, d.confidence_score, d.severity, d.needs_review,
    d.defect_position_x, d.defect_position_y, d.defect_size_width, d.defect_size_height,
    d.defect_position_meter, d.detection_time, d.received_at, d.original_image_id, d.labeled_image_id,
    d.model_id, d.camera_id, d.review_status, d.reviewed_by, d.reviewed_at, d.review_comment,
    d.original_defect_type"""


def recent_defects(db, limit: int = 30, after_id: int | None = None) -> defer.Deferred:
    """The newest defects (newest first); with ``after_id`` only those stored after that id."""
    if after_id is None:
        return rows(db, f"SELECT {DEFECT_COLUMNS} FROM defect_detections d ORDER BY d.id DESC LIMIT %s", (limit,))
    return rows(db, f"""SELECT {DEFECT_COLUMNS} FROM defect_detections d WHERE d.id > %s
                        ORDER BY d.id DESC LIMIT %s""", (after_id, limit))


def coil_defects(db, coil_number: str, limit: int = 5000) -> defer.Deferred:
    """Defects of one coil in detection order, with their metre position and the place across
    the strip (0..1 of the image width, when the defect's original image is known)."""
    return rows(db, f"""
        SELECT {DEFECT_COLUMNS},
               CASE WHEN i.width > 0 AND d.defect_position_x IS NOT NULL
                    THEN least(1.0, (d.defect_position_x + coalesce(d.defect_size_width, 0) / 2.0) / i.width)
               END AS across
        FROM defect_detections d LEFT JOIN images i ON i.id = d.original_image_id
        WHERE d.coil_number = %s ORDER BY d.detection_time, d.id LIMIT %s""", (coil_number, limit))


def today_counts(db, now: datetime.datetime) -> defer.Deferred:
    """Defects since the midnight (plant time) before ``now``, by type, most frequent first."""
    return rows(db, """
        SELECT defect_type, count(*) AS n FROM defect_detections
        WHERE detection_time >= (date_trunc('day', %s::timestamptz AT TIME ZONE %s) AT TIME ZONE %s)
        GROUP BY defect_type ORDER BY n DESC, defect_type""", (now, PLANT_TZ, PLANT_TZ))


def link_states(db) -> defer.Deferred:
    return rows(db, """SELECT link, kind, connected, last_seen_at, alive_count, details, updated_at
                       FROM link_status ORDER BY kind, link""")


def open_alerts(db, limit: int = 50) -> defer.Deferred:
    return rows(db, """SELECT id, rule, subject, severity, message, raised_at, acknowledged_at, acknowledged_by
                       FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at DESC LIMIT %s""", (limit,))


@defer.inlineCallbacks
def dashboard(db, now: datetime.datetime) -> defer.Deferred:
    """Everything the dashboard shows at first paint at ``now`` (the live part then follows by SSE)."""
    found = yield gather(
        coil=current_coil(db), speed=line_speed(db, now), images=latest_image_pair(db),
        defects=recent_defects(db), today=today_counts(db, now), links=link_states(db), alerts=open_alerts(db))
    coil = found["coil"]
    found["coil_defects"] = (yield coil_defects(db, coil["coil_number"])) if coil else []
    return found
