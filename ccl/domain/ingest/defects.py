"""A defect reported by the AI on a Jetson box: validation, severity and the review flag.

Validation collects every problem of an item (``field`` and ``reason``) instead of stopping at
the first, so a Jetson developer sees the whole story in one reply.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.times import parse_timestamp

SEVERITIES = ("low", "medium", "high", "critical")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_INT = 2**31 - 1
_PIXEL_FIELDS = ("defect_position_x", "defect_position_y", "defect_size_width", "defect_size_height")


class InvalidFields(ValueError):
    """Something a box sent breaks the rules; ``errors`` lists ``{"field", "reason"}`` for each problem."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


class InvalidDefect(InvalidFields):
    """One defect breaks the rules."""


@attrs.frozen
class Thresholds:
    """Confidence thresholds from system_settings (severity_thresholds, review_threshold)."""

    critical: float = 0.95
    high: float = 0.85
    medium: float = 0.6
    review: float = 0.5

    @classmethod
    def from_settings(cls, severity: Mapping[str, Any] | None, review: Any) -> "Thresholds":
        """Build from the stored JSON values; a missing or broken value keeps its default."""
        default = cls()
        severity = severity if isinstance(severity, Mapping) else {}

        def pick(value, fallback):
            return float(value) if _is_number(value) and 0 <= value <= 1 else fallback

        return cls(critical=pick(severity.get("critical"), default.critical),
                   high=pick(severity.get("high"), default.high),
                   medium=pick(severity.get("medium"), default.medium),
                   review=pick(review, default.review))

    def severity(self, confidence: float) -> str:
        if confidence >= self.critical:
            return "critical"
        if confidence >= self.high:
            return "high"
        if confidence >= self.medium:
            return "medium"
        return "low"

    def needs_review(self, confidence: float) -> bool:
        return confidence < self.review


@attrs.frozen
class Defect:
    """A validated defect, ready to store (severity and review flag already decided)."""

    coil_number: str
    defect_type: str
    confidence_score: float
    severity: str
    needs_review: bool
    detection_time: datetime
    camera_id: str = "top"
    event_id: str | None = None
    defect_position_x: int | None = None
    defect_position_y: int | None = None
    defect_size_width: int | None = None
    defect_size_height: int | None = None
    defect_position_meter: float | None = None
    original_image_path: str | None = None
    labeled_image_path: str | None = None
    model_id: int | None = None
    #: where detection_time came from: "box" (its detection_time) or "received" (it sent none:
    #: the receipt time); tracking corrects box stamps only (docs/tracking.md, "Placement")
    detection_time_source: str = "box"


def _is_number(value: object) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if kind is float:
        return math.isfinite(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object) -> int | None:
    """An int, or a float without a fraction (12.0), else None."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _text(item: Mapping[str, Any], name: str, errors: list, *, maximum: int, default: str | None = None) -> str | None:
    value = item.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        errors.append({"field": name, "reason": f"must be a non-empty text of at most {maximum} characters"})
        return None
    if len(value) > maximum:
        errors.append({"field": name, "reason": f"has {len(value)} characters; at most {maximum} are allowed"})
        return None
    if not storable_text(value):
        errors.append({"field": name, "reason": "contains a NUL character or an unpaired surrogate (\\u0000, "
                                                "\\ud800-\\udfff), which no text column can hold"})
        return None
    return value


def storable_json(value: object) -> bool:
    """Every text (keys included) of a decoded JSON value is storable (see storable_text)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return all(storable_text(str(key)) and storable_json(item) for key, item in value.items())
    if isinstance(value, list):
        return all(storable_json(item) for item in value)
    return True


def storable_text(value: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone UTF-16 surrogate (JSON can spell both)."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_defect(item: object, thresholds: Thresholds, *, now: datetime, coil_number: str | None = None,
                    coil_checked: bool = False) -> Defect:
    """Check one defect (a decoded JSON object) and decide its severity and review flag.

    ``coil_number``, when given (a batch's top-level number), applies instead of the item's;
    ``coil_checked`` says it was checked already (a batch checks it once, not per item).
    Unknown fields are ignored so that newer edge software keeps working.
    Written for speed as well: a 10,000-item batch runs it 10,000 times.
    """
    if type(item) is not dict and not isinstance(item, Mapping):
        raise InvalidDefect([{"field": "(item)", "reason": "a defect must be a JSON object"}])
    errors: list[dict[str, str]] = []

    coil = coil_number
    if not (coil_checked and coil_number is not None):
        try:
            coil = check_coil_number(coil_number if coil_number is not None else item.get("coil_number"))
        except InvalidCoilNumber as error:
            errors.append({"field": "coil_number", "reason": str(error)})

    defect_type = _text(item, "defect_type", errors, maximum=50)
    if defect_type is None and "defect_type" not in item:
        errors.append({"field": "defect_type", "reason": "is required (1-50 characters)"})

    confidence = item.get("confidence_score")
    if confidence is None:
        errors.append({"field": "confidence_score", "reason": "is required (a number from 0 to 1)"})
    elif not _is_number(confidence):
        errors.append({"field": "confidence_score", "reason": "must be a number from 0 to 1"})
    elif not 0 <= confidence <= 1:
        errors.append({"field": "confidence_score", "reason": f"{confidence} is outside 0..1"})

    pixels: dict[str, int | None] = {}
    for name in _PIXEL_FIELDS:
        value = item.get(name)
        if value is None or (type(value) is int and 0 <= value <= MAX_INT):
            pixels[name] = value
            continue
        whole = _whole(value)
        if whole is None or not 0 <= whole <= MAX_INT:
            errors.append({"field": name, "reason": "must be a whole number of pixels >= 0"})
        pixels[name] = whole

    meter = item.get("defect_position_meter")
    if meter is not None and (not _is_number(meter) or meter < 0):
        errors.append({"field": "defect_position_meter", "reason": "must be a number of metres >= 0"})

    detection_time, time_source = now, "received"
    if item.get("detection_time") is not None:
        time_source = "box"
        try:
            detection_time = parse_timestamp(item["detection_time"])
        except ValueError as error:
            errors.append({"field": "detection_time", "reason": str(error)})

    image_paths = {name: _text(item, name, errors, maximum=255)
                   for name in ("original_image_path", "labeled_image_path")}

    model_id = item.get("model_id")
    if model_id is not None:
        model_id = _whole(model_id)
        if model_id is None or not 1 <= model_id <= MAX_INT:
            errors.append({"field": "model_id", "reason": "must be the id (a whole number) of a known AI model"})

    camera_id = _text(item, "camera_id", errors, maximum=50, default="top")

    event_id = item.get("event_id")
    if event_id is not None and not (type(event_id) is str and _CANONICAL_UUID.fullmatch(event_id)):
        try:
            if not isinstance(event_id, str):
                raise ValueError
            event_id = str(uuid.UUID(event_id))
        except ValueError:
            errors.append({"field": "event_id", "reason": "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"})

    severity = item.get("severity")
    if severity is not None and severity not in SEVERITIES:
        errors.append({"field": "severity", "reason": f"must be one of {', '.join(SEVERITIES)}"})

    if errors:
        raise InvalidDefect(errors)
    return Defect(
        coil_number=coil, defect_type=defect_type, confidence_score=float(confidence),
        severity=severity or thresholds.severity(confidence), needs_review=thresholds.needs_review(confidence),
        detection_time=detection_time, camera_id=camera_id, event_id=event_id,
        defect_position_meter=None if meter is None else float(meter), model_id=model_id,
        detection_time_source=time_source, **pixels, **image_paths,
    )


def validate_batch(items: object, thresholds: Thresholds, *, now: datetime, coil_number: object,
                   maximum: int) -> list[Defect]:
    """All items or none: raise InvalidBatch with the errors by item index if any item is bad."""
    problems: list[dict[str, Any]] = []
    try:
        coil = check_coil_number(coil_number)
    except InvalidCoilNumber as error:
        raise InvalidBatch("coil_number", [{"field": "coil_number", "reason": str(error)}]) from None
    if not isinstance(items, list):
        raise InvalidBatch("defects", [{"field": "defects", "reason": "must be a JSON array of defects"}])
    if len(items) > maximum:
        raise InvalidBatch("size", [{"field": "defects",
                                     "reason": f"{len(items)} defects; a batch holds at most {maximum}"}])
    defects: list[Defect] = []
    seen_events: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            defect = validate_defect(item, thresholds, now=now, coil_number=coil, coil_checked=True)
        except InvalidDefect as error:
            problems.append({"index": index, "errors": error.errors})
            continue
        if defect.event_id is not None:
            if defect.event_id in seen_events:
                problems.append({"index": index, "errors": [{"field": "event_id", "reason":
                                 f"repeats the event_id of item {seen_events[defect.event_id]}"}]})
                continue
            seen_events[defect.event_id] = index
        defects.append(defect)
    if problems:
        raise InvalidBatch("items", problems)
    return defects


class InvalidBatch(ValueError):
    """A batch is refused as a whole. ``kind``: coil_number | defects | size | items."""

    def __init__(self, kind: str, details: list[dict[str, Any]]):
        super().__init__(kind)
        self.kind = kind
        self.details = details


@attrs.frozen
class Performance:
    """Scores sent to /model/performance; None means 'keep the stored value'."""

    accuracy_score: float | None = None
    precision_score: float | None = None
    recall_score: float | None = None
    f1_score: float | None = None


SCORES = ("accuracy_score", "precision_score", "recall_score", "f1_score")


def validate_performance(body: object) -> tuple[int, Performance]:
    """``(model_id, Performance)`` from a /model/performance body, or InvalidDefect naming the fields."""
    errors: list[dict[str, str]] = []
    if not isinstance(body, Mapping):
        raise InvalidDefect([{"field": "(body)", "reason": "must be a JSON object"}])
    model_id = _whole(body.get("model_id"))
    if model_id is None or not 1 <= model_id <= MAX_INT:
        errors.append({"field": "model_id", "reason": "is required: the id of a known AI model"})
    data = body.get("performance_data")
    if not isinstance(data, Mapping):
        errors.append({"field": "performance_data", "reason": "must be an object with scores from 0 to 1"})
        data = {}
    scores = {}
    for name in SCORES:
        value = data.get(name)
        if value is None:
            continue
        if not _is_number(value) or not 0 <= value <= 1:
            errors.append({"field": f"performance_data.{name}", "reason": "must be a number from 0 to 1"})
            continue
        scores[name] = float(value)
    if not scores and not errors:
        errors.append({"field": "performance_data", "reason": f"holds none of {', '.join(SCORES)}"})
    if errors:
        raise InvalidDefect(errors)
    return model_id, Performance(**scores)
