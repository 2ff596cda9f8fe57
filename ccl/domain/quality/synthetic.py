"""Labelled synthetic coils: roll-mark series hidden among random defects.

The benchmark measures the detector's precision and recall on them, and the line simulator can
use them to give a simulated run roll marks whose truth is known. Seeded: the same seed gives the
same coil.
"""

from __future__ import annotations

import random

import attrs

from ccl.domain.quality.periodic import PlacedDefect

DEFECT_TYPES = ("scratch", "dent", "spot", "stain", "pinhole")


@attrs.frozen
class TrueSeries:
    defect_type: str
    surface: str
    pitch_m: float
    member_ids: frozenset[int]


@attrs.frozen
class LabelledCoil:
    length_m: float
    width_mm: float
    defects: tuple[PlacedDefect, ...]
    series: tuple[TrueSeries, ...]

    @property
    def periodic_ids(self) -> frozenset[int]:
        return frozenset(i for series in self.series for i in series.member_ids)


@attrs.frozen
class CoilRecipe:
    """How hard the coil is: how many series, how noisy, how much clutter around them."""

    length_m: tuple[float, float] = (800.0, 3000.0)
    width_mm: tuple[float, float] = (900.0, 1600.0)
    series_count: tuple[int, int] = (0, 3)
    pitch_m: tuple[float, float] = (0.8, 5.0)
    close_pitch_share: float = 0.3     # share of extra series whose pitch is within 3 % of another's
    series_span_m: tuple[float, float] = (40.0, 400.0)
    miss_probability: float = 0.2
    position_noise_m: float = 0.015
    cross_noise_mm: float = 4.0
    random_defects_per_100m: float = 8.0
    edge_defects_per_100m: float = 0.0   # random along the length, bunched at one edge, one type


def labelled_coil(seed: int, recipe: CoilRecipe = CoilRecipe()) -> LabelledCoil:
    rng = random.Random(seed)
    length = rng.uniform(*recipe.length_m)
    width = rng.uniform(*recipe.width_mm)
    defects: list[PlacedDefect] = []
    truths: list[TrueSeries] = []
    next_id = 1
    pitches: list[float] = []
    for _ in range(rng.randint(*recipe.series_count)):
        if pitches and rng.random() < recipe.close_pitch_share:
            pitch = rng.choice(pitches) * rng.uniform(0.97, 1.03)
        else:
            pitch = rng.uniform(*recipe.pitch_m)
        pitches.append(pitch)
        defect_type = rng.choice(DEFECT_TYPES)
        surface = rng.choice(("top", "bottom"))
        cross = rng.uniform(20.0, width - 20.0)
        span = min(rng.uniform(*recipe.series_span_m), length * 0.9)
        start = rng.uniform(0.0, length - span)
        members = set()
        position = start
        while position <= start + span:
            if rng.random() >= recipe.miss_probability:
                defects.append(PlacedDefect(
                    next_id, defect_type, max(0.0, position + rng.gauss(0.0, recipe.position_noise_m)),
                    cross + rng.gauss(0.0, recipe.cross_noise_mm), surface))
                members.add(next_id)
                next_id += 1
            position += pitch
        truths.append(TrueSeries(defect_type, surface, pitch, frozenset(members)))
    for _ in range(int(length / 100.0 * recipe.random_defects_per_100m)):
        defects.append(PlacedDefect(
            next_id, rng.choice(DEFECT_TYPES), rng.uniform(0.0, length), rng.uniform(0.0, width),
            rng.choice(("top", "bottom"))))
        next_id += 1
    edge_type, edge_surface = rng.choice(DEFECT_TYPES), rng.choice(("top", "bottom"))
    for _ in range(int(length / 100.0 * recipe.edge_defects_per_100m)):
        defects.append(PlacedDefect(
            next_id, edge_type, rng.uniform(0.0, length), rng.uniform(5.0, 25.0), edge_surface))
        next_id += 1
    rng.shuffle(defects)
    return LabelledCoil(length, width, tuple(defects), tuple(truths))
