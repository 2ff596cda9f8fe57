"""Coil detail: schedule, CUT and WPD events, its line speed, defects and images."""

from __future__ import annotations

import datetime

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import gather, one, rows
from ccl.adapters.storage.ui_queries.dashboard import coil_defects, newest_tracked_coil

#: A coil with no CUT yet: its speed series runs this long after the WPD pass at most.
OPEN_COIL_WINDOW = "6 hours"


def schedules(db, coil_number: str) -> defer.Deferred:
    """Every TC 4000 row of the coil, newest first (the first is the one in force)."""
    return rows(db, """
        SELECT id, line_code, sequence_no, sent_at, received_at, coil_number, mo_number, product_group,
               material_code, customer_name, ccl_bom, thickness, width, weight, length_value, through_plate,
               sequence_order
        FROM tc_4000_schedule WHERE coil_number = %s ORDER BY received_at DESC, id DESC LIMIT 50""", (coil_number,))


def events(db, coil_number: str) -> defer.Deferred:
    """CUT (TC 4001) and WPD (TC 4002) telegrams of the coil, oldest first."""
    return rows(db, """
        SELECT * FROM (
            (SELECT 'WPD' AS kind, id, sequence_no, sent_at, received_at, NULL::integer AS cut_mode,
                    NULL::integer AS winding_length
             FROM tc_4002_wpd WHERE coil_number = %(c)s ORDER BY received_at LIMIT 100)
            UNION ALL
            (SELECT 'CUT', id, sequence_no, sent_at, received_at, cut_mode, winding_length
             FROM tc_4001_cut WHERE coil_number = %(c)s ORDER BY received_at LIMIT 100)
        ) e ORDER BY received_at, kind""", {"c": coil_number})


def speed_series(db, coil_number: str, now: datetime.datetime) -> defer.Deferred:
    """Line speed from the coil's first WPD pass to its last CUT (or, when it has no CUT yet,
    to ``now`` within a bounded window); empty when the coil never passed the WPD."""
    return rows(db, f"""
        WITH span AS (
            SELECT w.start, coalesce(
                (SELECT max(c.received_at) FROM tc_4001_cut c WHERE c.coil_number = %(c)s AND c.received_at >= w.start),
                least(%(now)s, w.start + interval '{OPEN_COIL_WINDOW}')) AS stop
            FROM (SELECT min(received_at) AS start FROM tc_4002_wpd WHERE coil_number = %(c)s) w
            WHERE w.start IS NOT NULL)
        SELECT sp.received_at AS t, sp.line_speed AS v FROM span, tc_4003_speed sp
        WHERE sp.received_at BETWEEN span.start AND span.stop ORDER BY sp.received_at LIMIT 20000""",
        {"c": coil_number, "now": now})


def images(db, coil_number: str, limit: int = 300) -> defer.Deferred:
    """The coil's images, newest first, with the id of the other half of each pair."""
    return rows(db, """
        SELECT i.id, i.kind, i.filename, i.width, i.height, i.format, i.captured_at, i.camera_id,
               i.thumbnail_path IS NOT NULL AS has_thumbnail, i.purged_at,
               (SELECT o.id FROM images o WHERE o.id <> i.id AND o.kind <> i.kind
                  AND (o.pair_id = i.id OR o.id = i.pair_id OR (i.pair_id IS NOT NULL AND o.pair_id = i.pair_id)
                       OR (o.coil_number = i.coil_number AND o.captured_at = i.captured_at))
                ORDER BY o.id LIMIT 1) AS partner_id
        FROM images i WHERE i.coil_number = %s ORDER BY i.captured_at DESC, i.id DESC LIMIT %s""",
        (coil_number, limit))


def tracked_coil(db, coil_number: str) -> defer.Deferred:
    """What coil tracking knows of the coil's newest pass (tracking_coils with its exit coils), or None."""
    return one(db, f"SELECT {newest_tracked_coil('%s')} AS tracking", (coil_number,)).addCallback(
        lambda found: found["tracking"] if found else None)


def periodic_series(db, coil_number: str) -> defer.Deferred:
    """The roll-mark series found on the coil's tracked coils, with their member defects."""
    return rows(db, """
        SELECT s.id, s.tracked_coil, s.surface, s.defect_type, s.pitch_m, s.cross_mm, s.start_m, s.end_m, s.members,
               s.expected, s.likely_roll, s.status, s.confirmed_at,
               (SELECT array_agg(m.defect_id ORDER BY m.defect_id) FROM periodic_members m WHERE m.series_id = s.id)
                 AS member_ids
        FROM periodic_series s WHERE s.coil_number = %s ORDER BY s.tracked_coil, s.start_m, s.id""", (coil_number,))


def grades(db, coil_number: str) -> defer.Deferred:
    """The grades of the coil's tracked coils (newest first): computed and, when overridden, final."""
    return rows(db, """
        SELECT tracked_coil, coil_number, grade, disposition, rule_version, reasons, graded_by, graded_at,
               override_grade, override_disposition, override_reason, overridden_by, overridden_at,
               coalesce(override_grade, grade) AS final_grade,
               coalesce(override_disposition, disposition) AS final_disposition
        FROM coil_grades WHERE coil_number = %s ORDER BY graded_at DESC""", (coil_number,))


def coil_detail(db, coil_number: str, now: datetime.datetime) -> defer.Deferred:
    """Everything the coil page shows at ``now``; ``schedules`` is empty for an unknown coil."""
    return gather(schedules=schedules(db, coil_number), events=events(db, coil_number),
                  speed=speed_series(db, coil_number, now), defects=coil_defects(db, coil_number),
                  images=images(db, coil_number), tracking=tracked_coil(db, coil_number),
                  series=periodic_series(db, coil_number), grades=grades(db, coil_number))


def image_record(db, image_id: int) -> defer.Deferred:
    """One image row (for serving its file by database id), or None."""
    return rows(db, """SELECT id, coil_number, kind, filename, path, thumbnail_path, format, width, height,
                              captured_at, purged_at, pair_id, stored_on
                       FROM images WHERE id = %s""", (image_id,)).addCallback(lambda found: found[0] if found else None)


def image_defects(db, image_id: int) -> defer.Deferred:
    """Defects that point at the image, by id or (older clients) by file name, with their boxes."""
    return rows(db, """
        SELECT d.id, d.defect_type, d.severity, d.confidence_score, d.defect_position_x, d.defect_position_y,
               d.defect_size_width, d.defect_size_height, d.defect_position_meter, d.review_status
        FROM images i JOIN defect_detections d
          ON d.original_image_id = i.id OR d.labeled_image_id = i.id
             OR (d.coil_number = i.coil_number AND (d.original_image_path = i.filename OR d.labeled_image_path = i.filename))
        WHERE i.id = %s ORDER BY d.id LIMIT 500""", (image_id,))


def image_partner(db, image_id: int) -> defer.Deferred:
    """``{"id", "kind"}`` of the other image of the pair (by pair id, or same coil and capture time), or None."""
    return one(db, """
        SELECT o.id, o.kind FROM images o, images i WHERE i.id = %(id)s AND o.id <> i.id AND o.kind <> i.kind
          AND (o.pair_id = i.id OR o.id = i.pair_id OR (i.pair_id IS NOT NULL AND o.pair_id = i.pair_id)
               OR (o.coil_number = i.coil_number AND o.captured_at = i.captured_at))
        ORDER BY o.id LIMIT 1""", {"id": image_id})
