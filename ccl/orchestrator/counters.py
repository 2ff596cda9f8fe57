"""How much a scraped counter rose over the last seconds (pure: the caller gives the time).

A service's counters start from 0 again when it restarts: a value below the one before is
counted as a reset (the rise is the new value itself), as Prometheus' ``increase()`` does.
The first value is only a baseline: the caller adds a 0 when a new process appears (the
orchestrator starts every child, so it sees each one's counters from 0).
"""

from __future__ import annotations

import collections


class CounterWindow:
    def __init__(self, window: float):
        self.window = window
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, now: float, value: float) -> None:
        self._samples.append((now, value))
        # Keep one sample at or before the window's start: the baseline of the first rise in it.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def increase(self, now: float) -> float:
        """The rise within the last ``window`` seconds before ``now``."""
        rise = 0.0
        previous = None
        for at, value in self._samples:
            if previous is not None and at > now - self.window:
                rise += value - previous if value >= previous else value
            previous = value
        return rise


def failed_writes(samples: list[tuple[str, dict, float]]) -> float:
    """The sum of a service's ``*_pg_writes_total{result="failed"}`` samples (0 before the first)."""
    return float(sum(value for name, labels, value in samples
                     if name.endswith("_pg_writes_total") and labels.get("result") == "failed"))
