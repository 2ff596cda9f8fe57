"""The strip's position along the line: the integral of the line speed (TC 4003) over time.

**Interpolated, not held.** The MES reports the line speed every 3 s. Between two samples the
speed is taken to change linearly (the trapezoid rule). Holding each sample until the next
errs systematically while the line ramps up or down: accelerating at 0.05 m/s^2, each 3 s
interval comes out 0.2 m short, and a 40 s ramp-up puts every later metre of the coil about
3 m wrong. Interpolation is exact for linear ramps and equal to holding at constant speed.
Its price: a position later than the newest sample must be extrapolated (the newest speed
held) until the next sample arrives; placements made so are *provisional* and placed again
when it does (a few seconds later).

Speed 0 is a line stop: between two zero samples the strip does not move. A stop runs from
its first zero sample to its last (the line decelerates into the first and accelerates out of
the last, by the interpolation).

Error bound of the integral (metres, cumulative, used for uncertainties): for each interval
of length dt between samples v0, v1 (m/s): |v1 - v0| * dt / 2 (the true speed somewhere
between the two samples), plus q * dt while moving (q = half the speed resolution: the MES
rounds to whole m/min). An interval longer than ``max_speed_gap_s`` is a gap: its profile is
unknown, bound max(v0, v1) * dt / 2 + q * dt. Extrapolation beyond the data counts as a gap.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

import attrs

MPM = 1.0 / 60.0  # m/min -> m/s


@attrs.frozen
class Interval:
    """A stretch of the delay log: a line stop, or a gap in the speed data. ``end`` None: still on."""

    kind: str  # "stop" | "speed_gap"
    start: float
    end: float | None


class SpeedProfile:
    """Line speed samples (time in seconds since the epoch, speed in m/min) and their integral.

    ``position(t)`` is an odometer in metres (its origin is the first sample: only differences
    mean anything); ``time_at(x)`` its inverse (the first moment the odometer read ``x``).
    """

    def __init__(self, samples: Iterable[tuple[float, float | None]], *, max_gap_s: float,
                 resolution_mpm: float = 1.0):
        self.max_gap_s = max_gap_s
        self._q = resolution_mpm * MPM / 2.0
        self.times: list[float] = []
        self.speeds: list[float] = []  # m/s
        self._cum: list[float] = []
        self._err: list[float] = []
        for at, mpm in sorted(((t, v) for t, v in samples if v is not None), key=lambda s: s[0]):
            self.append(at, mpm)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def last_time(self) -> float | None:
        return self.times[-1] if self.times else None

    def append(self, at: float, mpm: float) -> None:
        """Add a sample later than (or as late as) every other: O(1). Same time: the later wins."""
        v = max(0.0, mpm) * MPM
        if not self.times:
            self.times.append(at), self.speeds.append(v), self._cum.append(0.0), self._err.append(0.0)
            return
        if at < self.times[-1]:
            raise ValueError("append() takes samples in time order; build a new profile otherwise")
        if at == self.times[-1]:
            if len(self.times) == 1:
                self.speeds[-1] = v
                return
            self.times.pop(), self.speeds.pop(), self._cum.pop(), self._err.pop()
        t0, v0 = self.times[-1], self.speeds[-1]
        dt = at - t0
        self.times.append(at)
        self.speeds.append(v)
        self._cum.append(self._cum[-1] + (v0 + v) * dt / 2.0)
        self._err.append(self._err[-1] + self._interval_error(v0, v, dt))

    def _interval_error(self, v0: float, v1: float, dt: float) -> float:
        moving = self._q * dt if (v0 > 0 or v1 > 0) else 0.0
        if dt > self.max_gap_s:
            return max(v0, v1) * dt / 2.0 + moving
        return abs(v1 - v0) * dt / 2.0 + moving

    # position --------------------------------------------------------------------------

    def position(self, t: float) -> float:
        ts = self.times
        i = bisect_right(ts, t) - 1
        if i < 0:
            return self._cum[0] - self.speeds[0] * (ts[0] - t)
        if i >= len(ts) - 1:
            return self._cum[-1] + self.speeds[-1] * (t - ts[-1])
        s, dt = t - ts[i], ts[i + 1] - ts[i]
        v0 = self.speeds[i]
        return self._cum[i] + v0 * s + (self.speeds[i + 1] - v0) * s * s / (2.0 * dt)

    def speed(self, t: float) -> float:
        """m/s at ``t`` (the nearest sample's outside the data)."""
        ts = self.times
        i = bisect_right(ts, t) - 1
        if i < 0:
            return self.speeds[0]
        if i >= len(ts) - 1:
            return self.speeds[-1]
        f = (t - ts[i]) / (ts[i + 1] - ts[i])
        return self.speeds[i] + (self.speeds[i + 1] - self.speeds[i]) * f

    def error(self, t: float) -> float:
        """Cumulative error bound of ``position`` at ``t`` (non-decreasing in t): the error of
        ``position(b) - position(a)`` is at most ``error(b) - error(a)``."""
        ts = self.times
        i = bisect_right(ts, t) - 1
        if i < 0:
            return self._err[0] - (self.speeds[0] / 2.0 + self._q) * (ts[0] - t)
        if i >= len(ts) - 1:
            return self._err[-1] + (self.speeds[-1] / 2.0 + self._q) * (t - ts[-1])
        dt = ts[i + 1] - ts[i]
        return self._err[i] + self._interval_error(self.speeds[i], self.speeds[i + 1], dt) * (t - ts[i]) / dt

    def covers(self, t: float) -> bool:
        """``t`` lies within the samples (not extrapolated)."""
        return bool(self.times) and self.times[0] <= t <= self.times[-1]

    def time_at(self, x: float) -> float | None:
        """The first moment the odometer read ``x``; None when the data cannot say (the line
        stood still at the edge of the data)."""
        cum, ts, vs = self._cum, self.times, self.speeds
        if not ts:
            return None
        if x <= cum[0]:
            if x == cum[0]:
                return ts[0]
            return ts[0] - (cum[0] - x) / vs[0] if vs[0] > 0 else None
        i = bisect_left(cum, x)
        if i == len(cum):
            return ts[-1] + (x - cum[-1]) / vs[-1] if vs[-1] > 0 else None
        d = x - cum[i - 1]
        v0, dt = vs[i - 1], ts[i] - ts[i - 1]
        a = (vs[i] - v0) / dt
        root = v0 + math.sqrt(max(0.0, v0 * v0 + 2.0 * a * d))
        s = 2.0 * d / root if root > 0 else 0.0
        return ts[i - 1] + min(s, dt)

    # the delay log ---------------------------------------------------------------------

    def stops(self) -> list[Interval]:
        """Runs of zero samples; the last is open (end None) when the data ends stopped."""
        found: list[Interval] = []
        start = None
        for i, v in enumerate(self.speeds):
            if v == 0.0 and start is None:
                start = self.times[i]
            elif v > 0.0 and start is not None:
                found.append(Interval("stop", start, self.times[i - 1]))
                start = None
        if start is not None:
            found.append(Interval("stop", start, None))
        return found

    def gaps(self, now: float | None = None) -> list[Interval]:
        """Intervals between samples longer than ``max_gap_s``; with ``now``, also the open
        gap after the last sample when it is older than that."""
        ts = self.times
        found = [Interval("speed_gap", a, b) for a, b in zip(ts, ts[1:]) if b - a > self.max_gap_s]
        if now is not None and ts and now - ts[-1] > self.max_gap_s:
            found.append(Interval("speed_gap", ts[-1], None))
        return found

    def gap_free(self, start: float, end: float) -> bool:
        """Samples at most ``max_gap_s`` apart over all of [start, end], and reaching both ends."""
        ts = self.times
        if not ts or start < ts[0] - self.max_gap_s or end > ts[-1] + self.max_gap_s:
            return False
        i = max(0, bisect_right(ts, start) - 1)
        j = bisect_left(ts, end)
        return all(ts[k + 1] - ts[k] <= self.max_gap_s for k in range(i, min(j, len(ts) - 1)))
