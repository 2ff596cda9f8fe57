"""Read queries of the live dashboard (실시간 모니터링)."""

from __future__ import annotations

import datetime

from twisted.internet import defer

from ccl.adapters.storage.defect_keys import DEFECT_BY_KEY
from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, gather, one, rows

# The schedule columns a page shows for a coil: the latest TC 4000 row of that coil.
SCHEDULE_COLUMNS = """s.id AS schedule_id, s.received_at AS schedule_received_at, s.mo_number, s.product_group,
    s.material_code, s.customer_name, s.ccl_bom, s.thickness, s.width, s.weight, s.length_value,
    s.through_plate, s.sequence_order"""

_LATEST_SCHEDULE = f"""LEFT JOIN LATERAL (
    SELECT {SCHEDULE_COLUMNS} FROM tc_4000_schedule s
    WHERE s.coil_number = w.coil_number ORDER BY s.received_at DESC, s.id DESC LIMIT 1
) s ON true"""


#: What coil tracking (schema/094) knows of a coil, as the pages show it: its newest tracked
#: pass (a coil number run again is another tracked coil, "H1#2").
TRACKED_COIL_COLUMNS = """tracked_coil, coil_number, head_wpd_at, tail_wpd_at, head_at_camera, tail_at_camera,
    head_at_shear, tail_at_shear, length_m, length_uncertainty_m, inspected_m, mes_length_m, length_disagrees,
    schedule_present, wpd_seen, speed_gap_free, cut_seen, coverage, completeness, head_crop_m, tail_crop_m,
    computed_at"""


def newest_tracked_coil(coil: str) -> str:
    """SQL: the row_to_json of the newest tracked pass of the coil named by the SQL ``coil``, with its exit coils."""
    return f"""(SELECT row_to_json(t) FROM (
        SELECT {TRACKED_COIL_COLUMNS}, coalesce((SELECT json_agg(e ORDER BY e.piece) FROM tracking_exit_coils e
                                                 WHERE e.tracked_coil = c.tracked_coil), '[]') AS exit_coils
        FROM tracking_coils c WHERE c.coil_number = {coil} ORDER BY c.head_wpd_at DESC LIMIT 1) t)"""


def current_coil(db) -> defer.Deferred:
    """The coil whose WPD pass (TC 4002) came last, with its latest schedule and what tracking
    knows of it (``tracking``, None when nothing); None before any."""
    return one(db, f"""
        SELECT w.coil_number, w.received_at AS wpd_at, s.*, {newest_tracked_coil("w.coil_number")} AS tracking
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


#: Where coil tracking placed a defect (``t``: tracking_defects, NULL columns before it did).
#: ``surface``: the tracked surface, else the camera id (the cameras are named after theirs).
TRACKING_COLUMNS = """t.status AS tracking_status, t.tracked_coil, t.metre AS tracked_metre, t.uncertainty_m,
    coalesce(t.in_weld_zone, false) AS in_weld_zone, coalesce(t.surface, d.camera_id) AS surface,
    coalesce(t.coil_disagrees, false) AS coil_disagrees, t.exit_coil, t.exit_piece, t.exit_metre,
    coalesce(t.provisional, false) AS provisional"""


def recent_defects(db, limit: int = 30, after_id: int | None = None) -> defer.Deferred:
    """The newest defects (newest first), with their tracked place; with ``after_id`` only
    those stored after that id."""
    return rows(db, f"""SELECT {DEFECT_COLUMNS}, {TRACKING_COLUMNS}
                        FROM (SELECT * FROM defect_detections WHERE id > %s ORDER BY id DESC LIMIT %s) d
                        LEFT JOIN tracking_defects t ON t.defect_id = d.id ORDER BY d.id DESC""",
                (after_id or 0, limit))


def coil_defects(db, coil_number: str, limit: int = 5000) -> defer.Deferred:
    """Defects of one coil in detection order: those the box sent with this coil number and
    those tracking placed on the coil's newest tracked pass (``on_coil``), with their tracked
    place, the box's metre and the place across the strip (0..1 of the image width, when the
    defect's original image is known)."""
    return rows(db, f"""
        WITH tracked AS (SELECT tracked_coil FROM tracking_coils WHERE coil_number = %(c)s
                         ORDER BY head_wpd_at DESC LIMIT 1),
        keys AS (SELECT id, received_at FROM defect_detections WHERE coil_number = %(c)s
                 UNION
                 SELECT defect_id, defect_received_at FROM tracking_defects
                 WHERE tracked_coil = (SELECT tracked_coil FROM tracked))
        SELECT {DEFECT_COLUMNS}, {TRACKING_COLUMNS},
               coalesce(t.tracked_coil = (SELECT tracked_coil FROM tracked), false) AS on_coil,
               CASE WHEN i.width > 0 AND d.defect_position_x IS NOT NULL
                    THEN least(1.0, (d.defect_position_x + coalesce(d.defect_size_width, 0) / 2.0) / i.width)
               END AS across, pm.series_id AS periodic_series_id
        FROM keys {DEFECT_BY_KEY.format(id="keys.id", received_at="keys.received_at")}
             LEFT JOIN images i ON i.id = d.original_image_id
             LEFT JOIN tracking_defects t ON t.defect_id = d.id
             LEFT JOIN periodic_members pm ON pm.defect_id = d.id
        ORDER BY d.detection_time, d.id LIMIT %(limit)s""", {"c": coil_number, "limit": limit})


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
