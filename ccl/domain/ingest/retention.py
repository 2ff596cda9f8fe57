"""Which stored images to delete to stay under the age limit and the disk watermark.

Pure: the caller supplies the candidates (oldest first) and the measured usage; the plan says
which to delete and why. Rows stay in the database, marked purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs


@attrs.frozen
class Policy:
    max_age_days: float = 0  # 0: no age limit
    high_percent: float = 90.0  # start deleting above this disk usage
    low_percent: float = 85.0  # ... and stop below this
    max_store_bytes: int = 0  # 0: no limit on the store's own size


@attrs.frozen
class Usage:
    disk_total: int
    disk_used: int
    store_bytes: int  # bytes of images not yet purged


@attrs.frozen
class Candidate:
    id: int
    bytes: int
    received_at: datetime


@attrs.frozen
class Purge:
    candidate: Candidate
    reason: str  # "age" | "disk" | "store"


def plan(candidates: Iterable[Candidate], usage: Usage, policy: Policy, now: datetime) -> list[Purge]:
    """Oldest first: everything past the age limit, then more while over a watermark."""
    used = usage.disk_used
    store = usage.store_bytes
    disk_over = usage.disk_total > 0 and 100.0 * used / usage.disk_total > policy.high_percent
    store_over = policy.max_store_bytes > 0 and store > policy.max_store_bytes
    cutoff = now - timedelta(days=policy.max_age_days) if policy.max_age_days > 0 else None
    chosen: list[Purge] = []
    for candidate in candidates:
        if cutoff is not None and candidate.received_at < cutoff:
            reason = "age"
        elif disk_over and 100.0 * used / usage.disk_total > policy.low_percent:
            reason = "disk"
        elif store_over and store > policy.max_store_bytes * policy.low_percent / policy.high_percent:
            reason = "store"
        else:
            break  # candidates are oldest first: nothing younger qualifies either
        chosen.append(Purge(candidate, reason))
        used -= candidate.bytes
        store -= candidate.bytes
    return chosen
