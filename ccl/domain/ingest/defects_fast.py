"""The fast lane of batch validation: the common, well-formed batch checked in one tight loop.

``validate_batch`` checks rule by rule, collects every problem and builds a ``Defect`` per item:
right for telling a Jetson developer what is wrong, but a 1,000-item batch spent most of its
CPU there. ``fast_batch_rows`` accepts only items whose every value already has the exact
type and range the rules want (no 12.0 pixels, no upper-case UUIDs, no repeated event ids...)
and gives row tuples straight away; on anything else it returns None and the caller runs
``validate_batch``, which then accepts (normalising) or refuses with the full story. So the
fast lane can only ever be stricter, never more lenient; tests/test_defects_fast.py checks
that both agree on many mutated items.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ccl.domain.ingest.defects import _CANONICAL_UUID, MAX_INT, SEVERITIES, Defect, Thresholds, storable_text
from ccl.domain.ingest.times import parse_timestamp

class DefectRow(NamedTuple):
    """A validated defect as the store writes it, fields in the store's order.

    A NamedTuple, not a Defect: the fast lane makes up to 10,000 of them per batch and the
    COPY writer unpacks them positionally; readers use the names.
    """

    event_id: str | None
    coil_number: str
    defect_type: str
    confidence_score: float
    severity: str
    needs_review: bool
    defect_position_x: int | None
    defect_position_y: int | None
    defect_size_width: int | None
    defect_size_height: int | None
    defect_position_meter: float | None
    detection_time: datetime
    original_image_path: str | None
    labeled_image_path: str | None
    model_id: int | None
    camera_id: str
    detection_time_source: str  # "box" or "received" (Defect.detection_time_source)


#: The order of the fields in a defect row (what the store writes, in this order).
ROW_FIELDS = DefectRow._fields
_INF = float("inf")


def defect_row(d: Defect) -> DefectRow:
    """A validated Defect as a DefectRow."""
    return DefectRow(d.event_id, d.coil_number, d.defect_type, d.confidence_score, d.severity, d.needs_review,
                     d.defect_position_x, d.defect_position_y, d.defect_size_width, d.defect_size_height,
                     d.defect_position_meter, d.detection_time, d.original_image_path, d.labeled_image_path,
                     d.model_id, d.camera_id, d.detection_time_source)


def fast_batch_rows(items: object, thresholds: Thresholds, *, now: datetime, coil_number: str,
                    maximum: int) -> list[DefectRow] | None:
    """Rows for a batch whose items are all plainly valid, else None (use ``validate_batch``).

    ``coil_number`` must be checked already (the batch's top-level number, used for every item).
    """
    if type(items) is not list or len(items) > maximum:
        return None
    critical, high, medium, review = thresholds.critical, thresholds.high, thresholds.medium, thresholds.review
    int_, float_, str_, dict_ = int, float, str, dict
    uuid_ok = _CANONICAL_UUID.fullmatch
    # Texts repeat (types, cameras, times): each distinct one is checked once.
    short_texts: set[str] = set()
    times: dict[str, datetime] = {}
    events: set[str] = set()
    rows: list[DefectRow] = []
    append = rows.append
    row = DefectRow._make  # from a tuple: half the cost of DefectRow(...) per item
    for item in items:
        if type(item) is not dict_:
            return None
        get = item.get

        defect_type = get("defect_type")
        if type(defect_type) is not str_:
            return None
        if defect_type not in short_texts:
            if len(defect_type) > 50 or not defect_type.strip() or not storable_text(defect_type):
                return None
            short_texts.add(defect_type)

        confidence = get("confidence_score")
        kind = type(confidence)
        if kind is float_:
            if not 0.0 <= confidence <= 1.0:  # NaN fails too
                return None
        elif kind is int_:
            if not 0 <= confidence <= 1:
                return None
            confidence = float(confidence)
        else:
            return None

        x, y, w, h = get("defect_position_x"), get("defect_position_y"), get("defect_size_width"), \
            get("defect_size_height")
        for value in (x, y, w, h):
            if value is not None and (type(value) is not int_ or not 0 <= value <= MAX_INT):
                return None

        meter = get("defect_position_meter")
        if meter is not None:
            kind = type(meter)
            if kind is float_:
                if not 0.0 <= meter < _INF:
                    return None
            elif kind is int_ and meter >= 0:
                meter = float(meter)
            else:
                return None

        stamp = get("detection_time")
        if stamp is None:
            detection_time, source = now, "received"
        else:
            source = "box"
            detection_time = times.get(stamp) if type(stamp) is str_ else None
            if detection_time is None:
                if type(stamp) is not str_:
                    return None
                try:
                    detection_time = times[stamp] = parse_timestamp(stamp)
                except ValueError:
                    return None

        original, labeled = get("original_image_path"), get("labeled_image_path")
        for path in (original, labeled):
            if path is not None and (type(path) is not str_ or len(path) > 255 or not path.strip()
                                     or not storable_text(path)):
                return None

        model_id = get("model_id")
        if model_id is not None and (type(model_id) is not int_ or not 1 <= model_id <= MAX_INT):
            return None

        camera_id = get("camera_id")
        if camera_id is None:
            camera_id = "top"
        elif type(camera_id) is not str_:
            return None
        elif camera_id not in short_texts:
            if len(camera_id) > 50 or not camera_id.strip() or not storable_text(camera_id):
                return None
            short_texts.add(camera_id)

        event_id = get("event_id")
        if event_id is not None:
            if type(event_id) is not str_ or event_id in events or not uuid_ok(event_id):
                return None
            events.add(event_id)

        severity = get("severity")
        if severity is None:
            severity = ("critical" if confidence >= critical else "high" if confidence >= high
                        else "medium" if confidence >= medium else "low")
        elif severity not in SEVERITIES:
            return None

        append(row((event_id, coil_number, defect_type, confidence, severity, confidence < review, x, y, w, h,
                    meter, detection_time, original, labeled, model_id, camera_id, source)))
    return rows
