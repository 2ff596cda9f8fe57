"""What is known about a coil: "no defects" must never read as "no data".

A camera's coverage of a coil is the share of the coil's length that passed the camera while
the camera's box reported (``inspection_heartbeats``) frames inspected: each heartbeat period
counts with its share of frames inspected (``frames_inspected / frames_expected``, or 1 when
the box states no expectation and inspected any frame); a period with no frame inspected is
a gap; time no heartbeat covers counts as not inspected. Length, not time: a line stop
inspects nothing and misses nothing. No heartbeat of the camera during the coil's passage:
coverage unknown (None), never 100 %.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ccl.domain.tracking.records import Heartbeat

FULL = 1.0 - 1e-6


def coverage(heartbeats: Sequence[Heartbeat], start: float, end: float,
             position: Callable[[float], float]) -> float | None:
    """Share of the strip passing between ``start`` and ``end`` (times) that was inspected."""
    total = position(end) - position(start)
    periods = sorted((h for h in heartbeats if h.period_end > start and h.period_start < end),
                     key=lambda h: (h.period_start, h.period_end))
    if not periods:
        return None
    if total <= 0:
        return 1.0 if any(h.frames_inspected > 0 for h in periods) else 0.0
    inspected = 0.0
    covered_until = start
    for h in periods:
        a, b = max(h.period_start, covered_until), min(h.period_end, end)
        if b <= a:
            continue
        covered_until = b
        inspected += _share(h) * (position(b) - position(a))
    return max(0.0, min(1.0, inspected / total))


def _share(h: Heartbeat) -> float:
    if h.frames_inspected <= 0:
        return 0.0
    if h.frames_expected:
        return min(1.0, h.frames_inspected / h.frames_expected)
    return 1.0


def verdict(*, finished: bool, checks: Sequence[bool], coverage_by_camera: dict[str, float | None]) -> str:
    """running | partial (a check failed or a camera missed some length) | unknown (a camera
    without heartbeats) | complete."""
    if not finished:
        return "running"
    shares = list(coverage_by_camera.values())
    if not all(checks) or any(s is not None and s < FULL for s in shares):
        return "partial"
    if any(s is None for s in shares):
        return "unknown"
    return "complete"
