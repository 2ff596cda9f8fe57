"""Periodic (roll-mark) defects: series of one defect type at one width position whose
lengthwise spacing repeats at one pitch.

A damaged or dirty roll touches the strip once per turn, so its marks repeat at the roll's
circumference. The detector works on placed defects (metre from the coil head, position across
the width) of one coil and one surface, per defect type:

1. every unclaimed defect, in lengthwise order, is tried as the *anchor* of a series, with each
   later defect of the same type and width (within the tolerances) whose spacing lies in the pitch
   range as the candidate for its second member;
2. a candidate series is *extended* forward: the next member is expected one pitch on (the pitch is
   re-fitted from the members found so far, so a slightly wrong first spacing does not drift); a
   defect within the pitch tolerance of that place and the width tolerance of the series is a hit,
   an empty place is a miss; too many misses in a row end the series;
3. of the candidates of one anchor the one with the most hits wins (a true series at pitch p
   also matches 2p, 3p with half, a third of its hits), the larger pitch on a tie (p/2 has the
   same hits with half its places empty); it is accepted when it has enough members, a high
   enough share of its expected places is filled, and so full a series is unlikely to arise by
   chance among the other defects of that type and width (``chance_of_series``);
4. an accepted series claims its members, so they anchor nothing else: defects between the members
   of one series (stray defects, another series at a close pitch) stay free for the others;
5. an anchor with more than ``max_window_defects`` defects of its type within one maximum pitch
   either side of it sits in a flood, where no series could be told from chance: it is not tried (this
   keeps the work per anchor bounded however dense a stretch gets).

The detector is deterministic: the same defects give the same series, whatever their order of
arrival. ``PeriodicWatch`` runs it live over a coil's defects as they arrive.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import attrs


@attrs.frozen
class PeriodicSettings:
    """Pitch range and tolerances of the roll-mark detector (``[periodic]`` in the config)."""

    min_pitch_m: float = 0.5
    max_pitch_m: float = 6.0
    pitch_tolerance_m: float = 0.05
    cross_tolerance_mm: float = 15.0
    min_members: int = 5
    max_consecutive_misses: int = 3
    min_fill_ratio: float = 0.5
    roll_tolerance: float = 0.02  # relative: a pitch within 2 % of a roll's circumference names it
    max_chance: float = 1e-9  # a series as full as this must be that unlikely among the clutter around it
    #: more defects of one type and surface than this within one maximum pitch either side of an
    #: anchor is a flood (a faulty box, a scrap stretch), not a roll mark: that anchor is not
    #: tried. It bounds the work per anchor, which otherwise grows with the square of the flood.
    max_window_defects: int = 80

    def __attrs_post_init__(self) -> None:
        if not 0 < self.min_pitch_m < self.max_pitch_m:
            raise ValueError("periodic: need 0 < min_pitch_m < max_pitch_m")
        if self.pitch_tolerance_m <= 0 or self.pitch_tolerance_m >= self.min_pitch_m / 2:
            raise ValueError("periodic: pitch_tolerance_m must be > 0 and below half the minimum pitch")
        if self.cross_tolerance_mm <= 0:
            raise ValueError("periodic: cross_tolerance_mm must be > 0")
        if self.min_members < 3:
            raise ValueError("periodic: min_members must be at least 3 (two points make any pitch)")
        if self.max_consecutive_misses < 0:
            raise ValueError("periodic: max_consecutive_misses must be >= 0")
        if not 0 < self.min_fill_ratio <= 1:
            raise ValueError("periodic: min_fill_ratio must be in (0, 1]")
        if not 0 < self.max_chance < 1:
            raise ValueError("periodic: max_chance must be in (0, 1)")
        if self.max_window_defects < self.min_members:
            raise ValueError("periodic: max_window_defects must be at least min_members")


@attrs.frozen
class PlacedDefect:
    """A defect as the detector sees it: where it sits on the coil, not how it looks."""

    defect_id: int
    defect_type: str
    position_m: float
    cross_mm: float
    surface: str = "top"


@attrs.frozen
class Roll:
    """A roll of the line, from the roll table."""

    name: str
    diameter_mm: float

    @property
    def circumference_m(self) -> float:
        return math.pi * self.diameter_mm / 1000.0


@attrs.frozen
class PeriodicSeries:
    """A confirmed series: its members in lengthwise order and the pitch fitted to them."""

    defect_type: str
    surface: str
    pitch_m: float
    cross_mm: float
    member_ids: tuple[int, ...]
    start_m: float
    end_m: float
    expected: int  # places from the first to the last member, filled or not

    @property
    def fill_ratio(self) -> float:
        return len(self.member_ids) / self.expected

    def likely_roll(self, rolls: Iterable[Roll], tolerance: float) -> Roll | None:
        return likely_roll(self.pitch_m, rolls, tolerance)


def likely_roll(pitch_m: float, rolls: Iterable[Roll], tolerance: float) -> Roll | None:
    """The roll whose circumference is nearest the pitch, if within ``tolerance`` (relative)."""
    best, best_error = None, tolerance
    for roll in rolls:
        circumference = roll.circumference_m
        if circumference <= 0:
            continue
        error = abs(pitch_m - circumference) / circumference
        if error <= best_error:
            best, best_error = roll, error
    return best


def detect_series(defects: Iterable[PlacedDefect], settings: PeriodicSettings) -> list[PeriodicSeries]:
    """Every periodic series among ``defects`` (one coil), ordered by surface, type and start."""
    groups: dict[tuple[str, str], list[PlacedDefect]] = defaultdict(list)
    for defect in defects:
        groups[(defect.surface, defect.defect_type)].append(defect)
    found: list[PeriodicSeries] = []
    for key in sorted(groups):
        found.extend(_Group(groups[key], settings).series())
    return found


class _Group:
    """The defects of one surface and type, sorted along the coil, with their claims."""

    def __init__(self, defects: Sequence[PlacedDefect], settings: PeriodicSettings):
        self.settings = settings
        self.defects = sorted(defects, key=lambda d: (d.position_m, d.cross_mm, d.defect_id))
        self.positions = [d.position_m for d in self.defects]
        self.claimed = [False] * len(self.defects)

    def series(self) -> list[PeriodicSeries]:
        accepted: list[tuple[list[int], float]] = []
        for anchor in range(len(self.defects)):
            if self.claimed[anchor]:
                continue
            best = self._best_from(anchor)
            if best is None:
                continue
            for index in best[0]:
                self.claimed[index] = True
            accepted.append(best)
        grown = [self._grown(*self._filled(members, pitch)) for members, pitch in self._joined(accepted)]
        final = [self._filled(members, pitch) for members, pitch in self._joined(grown)]
        return [self._describe(members, pitch) for members, pitch in final]

    def _filled(self, members: list[int], pitch: float) -> tuple[list[int], float]:
        """A series with the free marks at its empty places taken in, at its pitch or a fraction.

        A series whose first marks happened to fit twice its pitch best has only every other mark;
        walking its places at half the pitch finds the rest, and the fill ratio says which is true.
        """
        s = self.settings
        best = (members, pitch)
        for fraction in range(1, s.max_consecutive_misses + 2):
            finer = pitch / fraction
            if finer < s.min_pitch_m - s.pitch_tolerance_m:
                break
            candidate = self._walk(members, finer)
            if len(candidate) > len(best[0]) and self._acceptable(candidate, finer):
                best = (candidate, self._refit(candidate, finer))
        for index in best[0]:
            self.claimed[index] = True
        return best

    def _walk(self, members: list[int], pitch: float) -> list[int]:
        """Every place of the series at ``pitch``, from its first member to its last, filled with
        its own member there or else the nearest free mark; places come from the line fitted to all
        members, which is steadier than stepping on from one noisy mark."""
        s = self.settings
        cross = self._cross(members)
        own = set(members)
        first = self.positions[members[0]]
        steps = [round((self.positions[i] - first) / pitch) for i in members]
        origin, fitted = fit_line(steps, [self.positions[i] for i in members])
        taken = []
        for place in range(steps[-1] + 1):
            expected = origin + fitted * place
            low = bisect.bisect_left(self.positions, expected - s.pitch_tolerance_m)
            high = bisect.bisect_right(self.positions, expected + s.pitch_tolerance_m)
            near = [i for i in range(low, high)
                    if (i in own or not self.claimed[i]) and abs(self.defects[i].cross_mm - cross) <= s.cross_tolerance_mm]
            if near:
                taken.append(min(near, key=lambda i: (i not in own, abs(self.positions[i] - expected))))
        return taken

    def _grown(self, members: list[int], pitch: float) -> tuple[list[int], float]:
        """A series followed on past its ends with its settled pitch, through longer gaps."""
        s = self.settings
        patience = 2 * s.max_consecutive_misses + 1
        cross = self._cross(members)
        for direction in (1, -1):
            end = members[-1] if direction == 1 else members[0]
            misses, turns = 0, 0
            while misses <= patience:
                turns += 1
                expected = self.positions[end] + direction * pitch * turns
                if not self.positions[0] - s.pitch_tolerance_m <= expected <= self.positions[-1] + s.pitch_tolerance_m:
                    break
                hit = self._nearest_free(expected, s.pitch_tolerance_m, cross, exclude=-1)
                if hit is None:
                    misses += 1
                    continue
                self.claimed[hit] = True
                members = members + [hit] if direction == 1 else [hit] + members
                end, misses, turns = hit, 0, 0
        return members, self._refit(members, pitch)

    def _joined(self, accepted: list[tuple[list[int], float]]) -> list[tuple[list[int], float]]:
        """Pieces of one series put back together.

        A series splits into pieces when a longer run of marks is missing (pieces one after the
        other, in phase), or when its first marks were noisy enough that a multiple of its pitch
        fitted better (pieces interleaved at a fraction of their pitch). Pieces at one width whose
        pitches agree join when their phase says they are one series.
        """
        pieces = sorted(accepted, key=lambda piece: self.positions[piece[0][0]])
        merged = True
        while merged:
            merged = False
            for i, j in ((i, j) for i in range(len(pieces)) for j in range(i + 1, len(pieces))):
                union = self._union(pieces[i], pieces[j])
                if union is not None:
                    pieces[i] = union
                    del pieces[j]
                    merged = True
                    break
        return pieces

    def _union(self, first: tuple[list[int], float], second: tuple[list[int], float]) -> tuple[list[int], float] | None:
        (a, pitch_a), (b, pitch_b) = first, second
        pitch = joined_pitch([self.positions[i] for i in a], pitch_a, self._cross(a),
                             [self.positions[i] for i in b], pitch_b, self._cross(b), self.settings)
        if pitch is None:
            return None
        members = sorted(a + b, key=lambda i: self.positions[i])
        return members, self._refit(members, pitch)

    def _cross(self, members: list[int]) -> float:
        return sum(self.defects[i].cross_mm for i in members) / len(members)

    def _refit(self, members: list[int], pitch: float) -> float:
        origin = self.positions[members[0]]
        steps = [round((self.positions[i] - origin) / pitch) for i in members]
        return fit_line(steps, [self.positions[i] for i in members])[1]

    def _best_from(self, anchor: int) -> tuple[list[int], float] | None:
        s = self.settings
        first = self.defects[anchor]
        low = bisect.bisect_left(self.positions, first.position_m + s.min_pitch_m - s.pitch_tolerance_m)
        high = bisect.bisect_right(self.positions, first.position_m + s.max_pitch_m + s.pitch_tolerance_m)
        reach = s.max_pitch_m + s.pitch_tolerance_m
        around = (bisect.bisect_right(self.positions, first.position_m + reach)
                  - bisect.bisect_left(self.positions, first.position_m - reach))
        if around > s.max_window_defects:
            return None
        best: tuple[list[int], float] | None = None
        tried: list[float] = []
        for second in range(low, high):
            if self.claimed[second] or abs(self.defects[second].cross_mm - first.cross_mm) > s.cross_tolerance_mm:
                continue
            spacing = self.positions[second] - first.position_m
            # The second mark found may be one or more turns on when marks were missed.
            for turns in range(1, s.max_consecutive_misses + 2):
                pitch = spacing / turns
                if pitch < s.min_pitch_m - s.pitch_tolerance_m:
                    break
                if pitch > s.max_pitch_m + s.pitch_tolerance_m:
                    continue
                if any(abs(pitch - known) <= s.pitch_tolerance_m / 4 for known in tried):
                    continue
                tried.append(pitch)
                members, fitted = self._extend(anchor, pitch)
                if not self._acceptable(members, fitted):
                    continue
                # Most members wins; on a tie the fuller series (the larger pitch: p over p/2).
                if best is None or (len(members), fitted) > (len(best[0]), best[1]):
                    best = (members, fitted)
        return best

    def _extend(self, anchor: int, pitch: float) -> tuple[list[int], float]:
        s = self.settings
        members, steps = [anchor], [0]  # steps: pitch multiples of each member from the anchor
        cross_sum = self.defects[anchor].cross_mm
        step, misses = 0, 0
        while misses <= s.max_consecutive_misses:
            step += 1
            # From the last member, not from a fitted origin: each hit re-anchors the prediction,
            # so an early pitch estimate (two noisy marks) cannot drift it off over many turns.
            expected = self.positions[members[-1]] + pitch * (step - steps[-1])
            if expected > self.positions[-1] + s.pitch_tolerance_m:
                break
            # Few members give a rough pitch: look wider until the fit has settled.
            tolerance = s.pitch_tolerance_m * (1.0 + min(1.0, (step - steps[-1]) / len(members)))
            hit = self._nearest_free(expected, tolerance, cross_sum / len(members), exclude=members[-1])
            if hit is None:
                misses += 1
                continue
            misses = 0
            members.append(hit)
            steps.append(step)
            cross_sum += self.defects[hit].cross_mm
            pitch = fit_line(steps, [self.positions[i] for i in members])[1]
        return members, pitch

    def _nearest_free(self, expected: float, tolerance: float, cross: float, exclude: int) -> int | None:
        s = self.settings
        low = bisect.bisect_left(self.positions, expected - tolerance)
        high = bisect.bisect_right(self.positions, expected + tolerance)
        best, best_distance = None, math.inf
        for index in range(low, high):
            if index <= exclude or self.claimed[index]:
                continue
            if abs(self.defects[index].cross_mm - cross) > s.cross_tolerance_mm:
                continue
            distance = abs(self.positions[index] - expected)
            if distance < best_distance:
                best, best_distance = index, distance
        return best

    def _acceptable(self, members: list[int], pitch: float) -> bool:
        s = self.settings
        if len(members) < s.min_members or not s.min_pitch_m <= pitch <= s.max_pitch_m:
            return False
        expected = self._expected(members, pitch)
        if len(members) / expected < s.min_fill_ratio:
            return False
        return chance_of_series(len(members), expected, self._clutter_per_m(members), s) <= s.max_chance

    def _clutter_per_m(self, members: list[int]) -> float:
        """Defects of this type per metre in the series' width band, its own members left out.

        Counted over the series and 50 m either side: the span of a few members alone would
        call the clutter between them nothing.
        """
        s = self.settings
        start, end = self.positions[members[0]] - _CLUTTER_MARGIN_M, self.positions[members[-1]] + _CLUTTER_MARGIN_M
        cross = self._cross(members)
        low = bisect.bisect_left(self.positions, start)
        high = bisect.bisect_right(self.positions, end)
        band = sum(1 for i in range(low, high) if abs(self.defects[i].cross_mm - cross) <= s.cross_tolerance_mm)
        return (band - len(members)) / (end - start)

    def _expected(self, members: list[int], pitch: float) -> int:
        span = self.positions[members[-1]] - self.positions[members[0]]
        return int(round(span / pitch)) + 1

    def _describe(self, members: list[int], pitch: float) -> PeriodicSeries:
        first = self.defects[members[0]]
        return PeriodicSeries(
            defect_type=first.defect_type,
            surface=first.surface,
            pitch_m=round(pitch, 4),
            cross_mm=round(sum(self.defects[i].cross_mm for i in members) / len(members), 1),
            member_ids=tuple(self.defects[i].defect_id for i in members),
            start_m=self.positions[members[0]],
            end_m=self.positions[members[-1]],
            expected=self._expected(members, pitch),
        )


def chance_of_series(members: int, places: int, clutter_per_m: float, settings: PeriodicSettings) -> float:
    """How likely random defects at ``clutter_per_m`` fill ``members`` of ``places`` by chance.

    Each place is a window of twice the pitch tolerance (widened while the pitch settles, hence
    the factor 1.5); a random defect falls into it with probability q. The answer is the binomial
    tail P(X >= members) for ``places`` tries: a long, full series in sparse clutter is
    astronomically unlikely, five marks in dense edge clutter are not.
    """
    q = min(1.0, clutter_per_m * settings.pitch_tolerance_m * 2 * 1.5)
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    total = 0.0
    for hits in range(members, places + 1):
        total += math.exp(math.lgamma(places + 1) - math.lgamma(hits + 1) - math.lgamma(places - hits + 1)
                          + hits * math.log(q) + (places - hits) * math.log1p(-q))
    return min(total, 1.0)


def joined_pitch(first: Sequence[float], first_pitch: float, first_cross: float,
                 second: Sequence[float], second_pitch: float, second_cross: float,
                 settings: PeriodicSettings) -> float | None:
    """The pitch of two pieces (member positions, pitch, width position) as one series, or None.

    Both pitches must be whole multiples of one pitch (the smaller or a fraction of it), and the
    second piece's first member must sit a whole number of those pitches from the first's nearest.
    """
    s = settings
    if abs(first_cross - second_cross) > s.cross_tolerance_mm:
        return None
    finer, coarser = sorted((first_pitch, second_pitch))
    head = second[0]
    offset = min(abs(head - position) for position in first)
    # Both pitches must be whole multiples of one pitch (2p and 3p pieces of a series at p).
    for fraction in range(1, s.max_consecutive_misses + 2):
        pitch = finer / fraction
        if pitch < s.min_pitch_m - s.pitch_tolerance_m:
            break
        multiple = round(coarser / pitch)
        if abs(coarser - multiple * pitch) > s.pitch_tolerance_m / 2:
            continue
        turns = round(offset / pitch)
        if turns >= 1 and abs(offset - turns * pitch) <= s.pitch_tolerance_m * 2:
            return pitch
    return None


def fit_line(steps: Sequence[int], positions: Sequence[float]) -> tuple[float, float]:
    """Least-squares origin and pitch of position over step: the line that fits all members best."""
    n = len(steps)
    mean_step = sum(steps) / n
    mean_position = sum(positions) / n
    numerator = sum((k - mean_step) * (x - mean_position) for k, x in zip(steps, positions))
    pitch = numerator / sum((k - mean_step) ** 2 for k in steps)
    return mean_position - pitch * mean_step, pitch


_CLUTTER_MARGIN_M = 50.0


@attrs.frozen
class SeriesEvent:
    """What arriving defects did: confirmed a new series or extended a known one."""

    kind: str  # "confirmed" | "extended"
    series: PeriodicSeries


class PeriodicWatch:
    """Roll-mark detection live, over one coil's defects as they arrive.

    Each arriving batch re-runs the detector over the coil so far, for the surfaces and types the
    batch touched, and reports what changed: a series whose members are all new is confirmed, a
    series that shares members with a known one extends it. So the live answer is always the
    answer ``detect_series`` gives for the same defects, and the coil's final answer needs no
    second pass. The work per batch grows with the defects of one type on the coil so far (a few
    thousand at most), not with the line's history.
    """

    def __init__(self, settings: PeriodicSettings):
        self.settings = settings
        self._defects: dict[tuple[str, str], list[PlacedDefect]] = defaultdict(list)
        self._series: dict[tuple[str, str], list[PeriodicSeries]] = defaultdict(list)

    @property
    def series(self) -> list[PeriodicSeries]:
        return [series for key in sorted(self._series) for series in self._series[key]]

    def add(self, defects: Iterable[PlacedDefect]) -> list[SeriesEvent]:
        touched = set()
        for defect in defects:
            key = (defect.surface, defect.defect_type)
            self._defects[key].append(defect)
            touched.add(key)
        events = []
        for key in sorted(touched):
            known = self._series[key]
            now = _Group(self._defects[key], self.settings).series()
            for series in now:
                members = set(series.member_ids)
                before = [old for old in known if members & set(old.member_ids)]
                if not before:
                    events.append(SeriesEvent("confirmed", series))
                elif any(series.member_ids != old.member_ids for old in before) or len(before) > 1:
                    events.append(SeriesEvent("extended", series))
            self._series[key] = now
        return events
