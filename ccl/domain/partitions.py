"""Monthly partitions: which months to create ahead and which to drop (pure; no clock of its own).

A partition holds one calendar month in UTC and is named ``<table>_pYYYYMM``. Keeping N months
keeps the month of ``today`` and the N - 1 before it whole; older months are expired.
"""

from __future__ import annotations

import re
from datetime import date

import attrs

_SUFFIX = re.compile(r"_p(\d{4})(\d{2})$")


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def months_ahead(today: date, ahead: int) -> list[date]:
    """This month and the ``ahead`` months after it."""
    first = month_start(today)
    return [add_months(first, n) for n in range(ahead + 1)]


def partition_month(name: str) -> date | None:
    """The month of a partition named ``<table>_pYYYYMM``; None for any other (the DEFAULT one)."""
    match = _SUFFIX.search(name)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return date(year, month, 1) if 1 <= month <= 12 else None


@attrs.frozen
class Expired:
    table: str
    partition: str
    month: date


def expired(table: str, partitions: list[str], today: date, keep_months: int) -> list[Expired]:
    """The partitions of ``table`` wholly older than the kept months, oldest first.

    ``keep_months`` 0 keeps everything (retention off for that group).
    """
    if keep_months <= 0:
        return []
    cutoff = add_months(month_start(today), -(keep_months - 1))
    found = []
    for name in partitions:
        month = partition_month(name)
        if month is not None and month < cutoff:
            found.append(Expired(table, name, month))
    return sorted(found, key=lambda e: e.month)
