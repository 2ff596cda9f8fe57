"""Timestamps sent by the Jetson boxes: ISO 8601; without an offset they mean plant time (KST)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

PLANT_ZONE = ZoneInfo("Asia/Seoul")


def parse_timestamp(value: object) -> datetime:
    """An aware datetime from an ISO 8601 string; raise ValueError with a reason otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an ISO 8601 date and time, e.g. 2025-04-09T13:59:14+09:00")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PLANT_ZONE)
    return parsed


def file_stamp(moment: datetime) -> str:
    """``YYYYMMDDHHMMSSfff`` in plant time, the stamp in stored image file names."""
    local = moment.astimezone(PLANT_ZONE)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"
