"""Coils between welds, and exit coils between cuts, along the line's odometer.

A TC 4002 names the coil whose head follows the weld that just passed the detector: coil k
runs from its weld to the next one. Positions here are odometer readings (line.SpeedProfile)
of the strip point at the weld point detector: a point that was at the detector when the
odometer read ``x`` is under a camera ``d`` metres on when it reads ``x + d``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import attrs


@attrs.define
class CoilSpan:
    tracked_coil: str  # the coil number; a later pass of the same number gets "#2", "#3"
    coil_number: str
    head_at: float  # the head weld passed the detector
    head_time_uncertainty_s: float
    head_x: float = 0.0
    tail_at: float | None = None
    tail_time_uncertainty_s: float = 0.0
    tail_x: float | None = None


@attrs.define
class Cut:
    at: float
    x: float  # odometer of the strip point cut (at the detector's reference)
    coil_number: str
    cut_mode: int | None
    winding_length: int | None


def coil_spans(welds: Sequence[tuple[float, str, float]]) -> list[CoilSpan]:
    """Coils from (time, coil number, time uncertainty) of the welds, in time order. A weld
    naming the same coil as the one before is a repeat and dropped."""
    spans: list[CoilSpan] = []
    passes: dict[str, int] = {}
    for at, number, uncertainty in welds:
        if spans and spans[-1].coil_number == number:
            continue
        passes[number] = passes.get(number, 0) + 1
        name = number if passes[number] == 1 else f"{number}#{passes[number]}"
        if spans:
            spans[-1].tail_at, spans[-1].tail_time_uncertainty_s = at, uncertainty
        spans.append(CoilSpan(name, number, at, uncertainty))
    return spans


def coil_at(heads: Sequence[float], x: float) -> int:
    """Index of the coil holding odometer reading ``x`` (-1: before the first weld)."""
    return bisect_right(heads, x) - 1


@attrs.frozen
class Piece:
    """The strip between two cuts (or, for the first cut known, its winding length back)."""

    start_x: float
    end_x: float
    cut: Cut
    mother: int  # index of the coil span holding most of it (-1: none)
    piece: int = 0  # 1, 2, ... within the mother


def pieces(cuts: Sequence[Cut], heads: Sequence[float]) -> list[Piece]:
    """Exit pieces of ``cuts`` (in time order), each given to the coil holding its middle."""
    found: list[Piece] = []
    previous: float | None = None
    counts: dict[int, int] = {}
    for cut in cuts:
        if previous is not None and cut.x <= previous:
            continue  # the line stood still or ran back between two cuts: nothing was cut off
        start = previous if previous is not None else (
            cut.x - cut.winding_length if cut.winding_length else None)
        previous = cut.x
        if start is None:
            continue  # the first cut known, without a winding length: only a boundary
        mother = coil_at(heads, (start + cut.x) / 2.0)
        counts[mother] = counts.get(mother, 0) + 1
        found.append(Piece(start, cut.x, cut, mother, counts[mother]))
    return found
