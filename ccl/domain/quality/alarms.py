"""Live defect alarms (결함 검출 임계값 알림): rules watched while the line runs.

Kinds of rule:
- ``critical_cluster``: N defects of at least a severity within M metres of one coil;
- ``density``: a defect type's count per 100 m over the last M metres above a threshold;
- ``periodic``: a roll-mark series confirmed (``ccl.domain.quality.periodic``);
- ``camera_silent``: a camera has sent nothing (no defect, image or heartbeat) for S seconds while
  the line runs (speed above zero).

``AlarmWatch`` is fed placed defects, confirmed series and the clock; it answers the alarms to
raise. A burst gives one alarm, not a flood: the defects of a raised cluster raise nothing more,
a series alarms once, and a silent camera once until it is heard again. Time is an input:
nothing here reads a clock.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ccl.domain.ingest.defects import SEVERITIES

ALARM_KINDS = ("critical_cluster", "density", "periodic", "camera_silent")


@attrs.frozen
class AlarmRule:
    name: str
    kind: str
    severity: str = "critical"  # the alert's severity, and for critical_cluster the defects' minimum
    count: int = 3
    window_m: float = 50.0
    defect_type: str | None = None
    per_100m: float = 10.0
    silent_s: float = 60.0

    def __attrs_post_init__(self) -> None:
        if self.kind not in ALARM_KINDS:
            raise ValueError(f"alarm {self.name!r}: kind must be one of {ALARM_KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alarm {self.name!r}: severity must be one of {SEVERITIES}")
        if self.count < 1 or self.window_m <= 0 or self.per_100m <= 0 or self.silent_s <= 0:
            raise ValueError(f"alarm {self.name!r}: count, window_m, per_100m and silent_s must be positive")


@attrs.frozen
class PlacedEvent:
    """A stored defect with its tracked place, as the alarm rules see it."""

    defect_id: int
    coil_number: str
    position_m: float
    defect_type: str
    severity: str
    camera_id: str


@attrs.frozen
class Alarm:
    rule: str
    kind: str
    severity: str
    key: str  # what it is about: a coil, a camera, a series
    message: str
    defect_ids: tuple[int, ...] = ()


def parse_rules(rows: Iterable[Mapping[str, Any]]) -> tuple[AlarmRule, ...]:
    """Alarm rules from their stored form (``system_settings`` key ``alarm_rules``)."""
    rules = []
    for row in rows:
        fields = {k: v for k, v in row.items() if k in attrs.fields_dict(AlarmRule)}
        rules.append(AlarmRule(**fields))
    return tuple(rules)


class AlarmWatch:
    def __init__(self, rules: Sequence[AlarmRule]):
        self.rules = tuple(rules)
        self._recent: dict[tuple[str, str], deque[PlacedEvent]] = defaultdict(deque)  # (rule, coil)
        self._raised: set[tuple[str, str]] = set()
        self._alarmed_to: dict[tuple[str, str], float] = {}  # (rule, coil) -> end of the last alarmed cluster
        self._last_seen: dict[str, datetime] = {}

    def defects(self, events: Iterable[PlacedEvent]) -> list[Alarm]:
        """Alarms raised by newly placed defects (in any order; each window is kept sorted)."""
        alarms = []
        for event in events:
            for rule in self.rules:
                if rule.kind == "critical_cluster" and SEVERITIES.index(event.severity) >= SEVERITIES.index(rule.severity):
                    alarms.extend(self._window(rule, event, lambda n, span: n >= rule.count,
                                               lambda n, span: f"{n} defects ≥ {rule.severity} within {span:.1f} m"))
                elif rule.kind == "density" and rule.defect_type in (None, event.defect_type):
                    threshold = rule.per_100m * rule.window_m / 100.0
                    alarms.extend(self._window(rule, event, lambda n, span: n >= threshold,
                                               lambda n, span: f"{event.defect_type} {n / rule.window_m * 100:.1f} per 100 m over {rule.window_m:g} m"))
        return alarms

    def series_confirmed(self, coil_number: str, defect_type: str, pitch_m: float, member_ids: Sequence[int],
                         roll: str | None) -> list[Alarm]:
        """A roll-mark series was confirmed on a coil: one alarm per periodic rule and series."""
        alarms = []
        for rule in self.rules:
            if rule.kind != "periodic" or rule.defect_type not in (None, defect_type):
                continue
            key = f"{coil_number}/{defect_type}/{pitch_m:.3f}"
            if (rule.name, key) in self._raised:
                continue
            self._raised.add((rule.name, key))
            where = f" (roll {roll})" if roll else ""
            alarms.append(Alarm(rule.name, rule.kind, rule.severity, key,
                                f"periodic {defect_type} every {pitch_m:.3f} m on {coil_number}{where}",
                                tuple(member_ids)))
        return alarms

    def camera_seen(self, camera_id: str, at: datetime) -> None:
        """An upload, defect batch or heartbeat came from the camera at ``at``."""
        if camera_id not in self._last_seen or at > self._last_seen[camera_id]:
            self._last_seen[camera_id] = at
        for rule in self.rules:
            self._raised.discard((rule.name, f"camera:{camera_id}"))

    def tick(self, now: datetime, line_running: bool, cameras: Iterable[str]) -> list[Alarm]:
        """Alarms for cameras silent too long while the line runs; ``cameras`` are the expected ones."""
        if not line_running:
            return []
        alarms = []
        for rule in self.rules:
            if rule.kind != "camera_silent":
                continue
            for camera in cameras:
                last = self._last_seen.get(camera)
                silent = None if last is None else (now - last).total_seconds()
                if last is not None and silent < rule.silent_s:
                    continue
                key = f"camera:{camera}"
                if (rule.name, key) in self._raised:
                    continue
                self._raised.add((rule.name, key))
                since = "never seen" if last is None else f"silent for {silent:.0f} s"
                alarms.append(Alarm(rule.name, rule.kind, rule.severity, key,
                                    f"camera {camera} {since} while the line runs"))
        return alarms

    def _window(self, rule: AlarmRule, event: PlacedEvent, fires, describe) -> list[Alarm]:
        window = self._recent[(rule.name, event.coil_number)]
        window.append(event)
        ordered = sorted(window, key=lambda e: e.position_m)
        # Forget what no later defect can bring into a window again (defects arrive roughly in order).
        newest = ordered[-1].position_m
        while window and window[0].position_m < newest - 2 * rule.window_m:
            window.popleft()
        alarmed_to = self._alarmed_to.get((rule.name, event.coil_number), float("-inf"))
        fresh = [e for e in ordered if e.position_m > alarmed_to and abs(e.position_m - event.position_m) <= rule.window_m]
        best = _densest(fresh, rule.window_m)
        if not best or not fires(len(best), best[-1].position_m - best[0].position_m):
            return []
        # The defects of one alarm raise nothing more; the next alarm needs a cluster past them.
        self._alarmed_to[(rule.name, event.coil_number)] = best[-1].position_m
        span = best[-1].position_m - best[0].position_m
        key = f"{event.coil_number}@{best[0].position_m:.0f}m"
        return [Alarm(rule.name, rule.kind, rule.severity, key,
                      f"{event.coil_number}: {describe(len(best), span)}", tuple(e.defect_id for e in best))]


def _densest(ordered: Sequence[PlacedEvent], window_m: float) -> list[PlacedEvent]:
    """The most defects that fit in one window of ``window_m`` metres."""
    best: list[PlacedEvent] = []
    start = 0
    for end in range(len(ordered)):
        while ordered[end].position_m - ordered[start].position_m > window_m:
            start += 1
        if end - start + 1 > len(best):
            best = list(ordered[start:end + 1])
    return best
