"""A Jetson box's inspection heartbeat: how many frames a camera inspected over a period.

Coil tracking needs it to tell "no defects" from "no data": a camera's inspected share of a
coil comes from its heartbeats; without them its coverage is unknown. Validation collects
every problem (``field`` and ``reason``), as for defects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import attrs

from ccl.domain.ingest.defects import MAX_INT, InvalidFields, _text, _whole

class InvalidHeartbeat(InvalidFields):
    """The heartbeat breaks the rules."""


@attrs.frozen
class Heartbeat:
    camera_id: str
    box_id: str | None
    period_start: datetime
    period_end: datetime
    frames_inspected: int
    frames_expected: int | None


def validate_heartbeat(body: object, *, max_period: timedelta) -> Heartbeat:
    """Check a decoded JSON heartbeat: times ISO 8601 WITH an offset (a box's local clock
    without one is ambiguous over a whole period), end after start, the period at most
    ``max_period``, frame counts whole numbers >= 0. Raises InvalidHeartbeat."""
    if not isinstance(body, Mapping):
        raise InvalidHeartbeat([{"field": "(body)", "reason": "must be a JSON object"}])
    errors: list[dict[str, str]] = []
    camera_id = _text(body, "camera_id", errors, maximum=50, default="top")
    box_id = _text(body, "box_id", errors, maximum=50)
    start = _moment(body, "period_start", errors)
    end = _moment(body, "period_end", errors)
    if start is not None and end is not None:
        if end <= start:
            errors.append({"field": "period_end", "reason": "must be after period_start"})
        elif end - start > max_period:
            errors.append({"field": "period_end", "reason": f"the period is {(end - start).total_seconds():g} s long;"
                                                            f" at most {max_period.total_seconds():g} s are allowed"})
    inspected = _count(body, "frames_inspected", errors, required=True)
    expected = _count(body, "frames_expected", errors, required=False)
    if errors:
        raise InvalidHeartbeat(errors)
    return Heartbeat(camera_id, box_id, start, end, inspected, expected)


def _moment(body: Mapping, name: str, errors: list) -> datetime | None:
    value = body.get(name)
    reason = "is required: an ISO 8601 date and time with its offset, e.g. 2025-04-09T13:59:14+09:00"
    if value is None:
        errors.append({"field": name, "reason": reason})
        return None
    try:
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) and value.strip() else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        errors.append({"field": name, "reason": reason})
        return None
    return moment


def _count(body: Mapping, name: str, errors: list, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            errors.append({"field": name, "reason": "is required: a whole number >= 0"})
        return None
    count = _whole(value)
    if count is None or not 0 <= count <= MAX_INT:
        errors.append({"field": name, "reason": f"must be a whole number from 0 to {MAX_INT}"})
        return None
    return count
