"""A simulated run of the coating line, with its ground truth (``ccl simulate line``).

Pure and deterministic for a plan: a physical model of the line (the true line speed,
integrated at a fine step, moves the strip past the weld point detector, the cameras and
the exit shear) turns into what the plant's systems would report of it:

* the MES: schedules (TC 4000) ahead of each coil, the weld passing the WPD (TC 4002), the
  sampled line speed every 3 s (TC 4003, whole m/min), the exit cut of each coil (TC 4001;
  a coil cut into several gets one cut per piece), alives (TC 4999);
* each camera's Jetson box: an image pair per defect frame, the defects in batches per coil,
  and heartbeats (frames inspected per period), stamped with the box's own clock (which may
  be wrong by a set offset) and the coil the box believes it sees (which may lag the weld);
* the truth: for every defect its coil, its metre from the coil's head (the weld), camera,
  and the true time it passed the camera.

Times are seconds from the start of the run (``at``); ``RunPlan.start`` anchors them to the
calendar, so the same plan always yields the same run. The line distances are those of the
server's ``[tracking]`` settings: the cameras ``wpd_to_camera_m`` (plus a per-camera offset)
after the WPD, the shear ``camera_to_shear_m`` after the cameras.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from array import array
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

import attrs

from ccl.domain.production import SPEED_EVERY, make_coil

ALIVE_EVERY = 30.0
DEFECT_TYPES = ("scratch", "dent", "stain", "pinhole", "coating_defect", "edge_crack", "roll_mark")
# TC 4001 cut_mode: 1 the whole coil wound, 2 one piece of a coil divided at the shear.
CUT_WHOLE = 1
CUT_DIVIDED = 2
_EVENT_NAMESPACE = uuid.UUID("6f1c2b4e-3d0a-4c55-9a7e-1d2f3a4b5c6d")


@attrs.frozen
class LineGeometry:
    """Distances along the strip, in metres, as the server's ``[tracking]`` settings name them."""

    wpd_to_camera_m: float = 30.0
    camera_to_shear_m: float = 60.0
    camera_offsets_m: Mapping[str, float] = attrs.field(factory=lambda: {"top": 0.0, "bottom": 1.5}, eq=False)

    def camera_m(self, camera: str) -> float:
        """Metres from the WPD to the camera."""
        return self.wpd_to_camera_m + self.camera_offsets_m.get(camera, 0.0)

    @property
    def shear_m(self) -> float:
        return self.wpd_to_camera_m + self.camera_to_shear_m


@attrs.frozen
class RunPlan:
    """What to play. Speeds in m/min, lengths in metres, times in seconds."""

    start: datetime  # the calendar time of ``at`` 0 (aware)
    geometry: LineGeometry = attrs.Factory(LineGeometry)
    seed: int = 1
    coils: int = 3
    coil_length_m: float = 300.0  # mean; each coil within +-15 %
    speed_mpm: float = 120.0  # the line's cruising speed
    ramp_mpm_per_s: float = 10.0  # how fast the line speeds up and slows down
    speed_variation: float = 0.05  # the drive drifts within -2x..+1x this share, and wobbles by a fifth of it
    stops: int = 1  # line stops spread over the run
    stop_s: float = 20.0
    defects_per_coil: int = 6
    split_every: int = 2  # every n-th coil is cut into pieces at the shear (0: never)
    split_pieces: int = 2  # into how many
    cameras: tuple[str, ...] = ("top", "bottom")
    clock_offsets_s: Mapping[str, float] = attrs.field(factory=dict, eq=False)  # the box's clock minus the truth
    box_coil_lag_m: float = 0.0  # the box learns of a new coil this many metres after its weld
    heartbeat_every_s: float = 10.0  # 0: no heartbeats
    camera_gaps: tuple[tuple[str, float, float], ...] = ()  # (camera, from at, to at): the box saw nothing
    batch_every_s: float = 5.0
    fps: float = 20.0
    step_s: float = 0.01  # integration step of the true speed
    schedules_ahead: int = 3


@attrs.frozen
class Event:
    """Something a system reports at ``at``; ``kind`` is ``telegram``, ``pair``, ``batch`` or ``heartbeat``."""

    at: float
    kind: str
    camera: str | None
    payload: Mapping


@attrs.frozen
class TrueDefect:
    event_id: str
    coil_number: str  # the coil as welded (the boxes' and the schedule's number)
    metre: float  # from that coil's head (the weld)
    camera: str
    passed_at: datetime  # true time it passed the camera
    captured_at: datetime  # what the box stamped (its clock)
    box_coil: str  # the coil number the box sent
    defect_type: str
    piece: int  # 1.. which piece of a coil divided at the shear (1 for a whole coil)
    piece_metre: float  # metre from the head of that piece
    weld_distance_m: float  # to the nearer weld of its coil


@attrs.frozen
class TrueCoil:
    coil_number: str
    length_m: float  # true length (the schedule says it rounded)
    head_at_wpd: datetime
    pieces_m: tuple[float, ...]


@attrs.frozen
class Run:
    plan: RunPlan
    events: tuple[Event, ...]  # in time order
    defects: tuple[TrueDefect, ...]
    coils: tuple[TrueCoil, ...]
    stops: tuple[tuple[datetime, datetime], ...]  # true speed exactly 0
    duration_s: float

    def truth_lines(self) -> Iterator[dict]:
        """The truth as JSON-ready dicts (``ccl simulate line --truth``)."""
        for coil in self.coils:
            yield {"kind": "coil", "coil": coil.coil_number, "length_m": round(coil.length_m, 3),
                   "head_at_wpd": coil.head_at_wpd.isoformat(), "pieces_m": [round(p, 3) for p in coil.pieces_m]}
        for begin, end in self.stops:
            yield {"kind": "stop", "from": begin.isoformat(), "to": end.isoformat()}
        for d in self.defects:
            yield {"kind": "defect", "event_id": d.event_id, "coil": d.coil_number, "metre": round(d.metre, 3),
                   "camera": d.camera, "captured_at": d.captured_at.isoformat(timespec="milliseconds"),
                   "passed_at": d.passed_at.isoformat(timespec="milliseconds"), "box_coil": d.box_coil,
                   "defect_type": d.defect_type, "piece": d.piece, "piece_metre": round(d.piece_metre, 3),
                   "weld_distance_m": round(d.weld_distance_m, 3)}


class StripMotion:
    """The true strip: speed and position (metres past the WPD since ``at`` 0) on a fine grid."""

    def __init__(self, step_s: float, speed_mpm: float):
        self.step_s = step_s
        self.speeds = array("d", [speed_mpm])  # m/min at each step's end
        self.positions = array("d", [0.0])

    def advance(self, speed_mpm: float) -> None:
        """One step ending at ``speed_mpm`` (trapezoid between the previous speed and this one)."""
        self.positions.append(self.positions[-1] + (self.speeds[-1] + speed_mpm) / 2 / 60 * self.step_s)
        self.speeds.append(speed_mpm)

    @property
    def end_s(self) -> float:
        return (len(self.positions) - 1) * self.step_s

    @property
    def position(self) -> float:
        return self.positions[-1]

    def speed_at(self, at: float) -> float:
        return self.speeds[min(max(int(round(at / self.step_s)), 0), len(self.speeds) - 1)]

    def time_at(self, position: float) -> float:
        """When the strip point ``position`` metres behind the WPD's zero passed the WPD
        (the first time, linear within a step)."""
        index = bisect.bisect_left(self.positions, position)
        if index >= len(self.positions):
            raise ValueError(f"the strip never reached {position:.3f} m")
        if index == 0:
            return 0.0
        low, high = self.positions[index - 1], self.positions[index]
        share = (position - low) / (high - low) if high > low else 0.0
        return (index - 1 + share) * self.step_s


def _drive(plan: RunPlan, needed_m: float, rng: random.Random) -> tuple[StripMotion, list[tuple[float, float]]]:
    """Run the line until ``needed_m`` metres have passed the WPD, and two speed samples more
    (so that the last passage is covered by speed telegrams on both sides): cruise with a slow
    drift and a small wobble, ``plan.stops`` stops (ramp down, standstill, ramp up) spread
    over the run."""
    motion = StripMotion(plan.step_s, plan.speed_mpm)
    stops_at = [needed_m * (i + 1) / (plan.stops + 1) for i in range(plan.stops)]
    stops: list[tuple[float, float]] = []
    speed = plan.speed_mpm
    target = plan.speed_mpm
    drift_target = plan.speed_mpm
    next_drift = 30.0
    standing_until: float | None = None
    phase = rng.uniform(0, 2 * math.pi)
    ramp = plan.ramp_mpm_per_s * plan.step_s
    stop_started: float | None = None
    reached_at: float | None = None
    while reached_at is None or motion.end_s < reached_at + 2 * SPEED_EVERY:
        now = motion.end_s
        if reached_at is None and motion.position >= needed_m:
            reached_at = now
        if now >= next_drift:
            drift_target = plan.speed_mpm * (1.0 + rng.uniform(-2.0, 1.0) * plan.speed_variation)
            next_drift = now + rng.uniform(20.0, 60.0)
        if standing_until is not None:
            target = 0.0
            if now >= standing_until:
                standing_until = None
        elif stops_at and motion.position >= stops_at[0] - _braking_m(speed, plan.ramp_mpm_per_s):
            stops_at.pop(0)
            standing_until = math.inf  # set once the line stands
            target = 0.0
        else:
            target = drift_target
        if speed > target:
            speed = max(target, speed - ramp)
        elif speed < target:
            speed = min(target, speed + ramp)
        if speed == 0.0 and standing_until == math.inf:
            standing_until = now + plan.stop_s
            stop_started = now
        if stop_started is not None and speed > 0.0:
            stops.append((stop_started, now))
            stop_started = None
        wobble = 1.0 + plan.speed_variation / 5 * math.sin(2 * math.pi * now / 41.0 + phase)
        motion.advance(speed * wobble)
    return motion, stops


def _braking_m(speed_mpm: float, ramp_mpm_per_s: float) -> float:
    return (speed_mpm / 60.0) * (speed_mpm / ramp_mpm_per_s) / 2


def plan_run(plan: RunPlan) -> Run:
    """The whole run: what every system reports, in time order, and the truth behind it."""
    rng = random.Random(plan.seed)
    geometry = plan.geometry
    # The planned coils, then one more that only carries the last one's tail to the shear.
    lengths = [plan.coil_length_m * rng.uniform(0.85, 1.15) for _ in range(plan.coils + 1)]
    coils = []
    for index, length in enumerate(lengths):
        coil = make_coil(index, rng)
        values = dict(coil.values, length_value=int(round(length)))
        coils.append((coil.coil_number, values))
    heads = [sum(lengths[:k]) for k in range(len(lengths) + 1)]
    needed = heads[plan.coils] + geometry.shear_m + 1.0
    motion, stop_spans = _drive(plan, needed, rng)
    duration = motion.end_s

    def when(at: float) -> datetime:
        return plan.start + timedelta(seconds=at)

    events: list[Event] = []

    def telegram(at: float, tc_code: str, values: dict, note: str = "") -> None:
        events.append(Event(at, "telegram", None, {"tc_code": tc_code, "values": values, "note": note}))

    for k in range(min(plan.schedules_ahead, len(coils))):
        telegram(0.0, "4000", coils[k][1], f"schedule {coils[k][0]}")
    at = 0.0
    while at <= duration:
        telegram(at, "4003", {"line_speed": int(round(motion.speed_at(at)))})
        at += SPEED_EVERY
    at = ALIVE_EVERY
    while at <= duration:
        telegram(at, "4999", {})
        at += ALIVE_EVERY
    true_coils = []
    pieces_of: list[tuple[float, ...]] = []
    for k, (number, _values) in enumerate(coils):
        head_at = motion.time_at(heads[k])
        telegram(head_at, "4002", {"coil_number": number}, f"coil {number} enters (WPD)")
        ahead = k + plan.schedules_ahead
        if ahead < len(coils):
            telegram(head_at, "4000", coils[ahead][1], f"schedule {coils[ahead][0]}")
        if k >= plan.coils:
            continue
        divided = plan.split_every > 0 and (k + 1) % plan.split_every == 0
        pieces = _pieces(lengths[k], plan.split_pieces, rng) if divided else (lengths[k],)
        pieces_of.append(pieces)
        true_coils.append(TrueCoil(number, lengths[k], when(head_at), pieces))
        cut_at = heads[k]
        for piece in pieces:
            cut_at += piece
            telegram(motion.time_at(cut_at + geometry.shear_m), "4001",
                     {"coil_number": number, "cut_mode": CUT_DIVIDED if divided else CUT_WHOLE,
                      "winding_length": int(round(piece))},
                     f"coil {number} cut at the exit ({piece:.0f} m)")
    defects = _defects(plan, motion, coils, lengths, heads, pieces_of, rng, when)
    events += _box_events(plan, defects)
    events += _heartbeats(plan, duration, when)
    order = {"telegram": 0, "pair": 1, "batch": 2, "heartbeat": 3}
    events.sort(key=lambda e: (e.at, order[e.kind]))
    stops = tuple((when(a), when(b)) for a, b in stop_spans)
    return Run(plan, tuple(events), tuple(defects), tuple(true_coils), stops, duration)


def _pieces(length: float, count: int, rng: random.Random) -> tuple[float, ...]:
    """``length`` cut into ``count`` pieces of unequal length (each 70-130 % of an equal share)."""
    if count <= 2:
        first = length * rng.uniform(0.35, 0.65)
        return (first, length - first)
    shares = [rng.uniform(0.7, 1.3) for _ in range(count)]
    return tuple(length * share / sum(shares) for share in shares)


def _defects(plan, motion, coils, lengths, heads, pieces_of, rng, when) -> list[TrueDefect]:
    geometry = plan.geometry
    found = []
    for k in range(plan.coils):
        number = coils[k][0]
        for index in range(plan.defects_per_coil):
            # One defect of every coil close to its weld, so that weld zones get exercised.
            metre = rng.uniform(0.2, 1.5) if index == 0 else rng.uniform(0.0, lengths[k])
            camera = plan.cameras[rng.randrange(len(plan.cameras))]
            passed = motion.time_at(heads[k] + metre + geometry.camera_m(camera))
            if any(c == camera and a <= passed < b for c, a, b in plan.camera_gaps):
                continue  # the box saw nothing then
            captured = when(passed) + timedelta(seconds=plan.clock_offsets_s.get(camera, 0.0))
            box_coil = coils[k - 1][0] if k > 0 and metre < plan.box_coil_lag_m else number
            piece, piece_metre = _piece_of(pieces_of[k], metre)
            event_id = str(uuid.uuid5(_EVENT_NAMESPACE, f"{plan.seed}/{number}/{index}"))
            found.append(TrueDefect(event_id, number, metre, camera, when(passed), captured, box_coil,
                                    rng.choice(DEFECT_TYPES), piece, piece_metre,
                                    min(metre, lengths[k] - metre)))
    found.sort(key=lambda d: d.passed_at)
    return found


def _piece_of(pieces: tuple[float, ...], metre: float) -> tuple[int, float]:
    start = 0.0
    for index, length in enumerate(pieces, 1):
        if metre < start + length or index == len(pieces):
            return index, metre - start
        start += length
    raise AssertionError("unreachable")


def _box_events(plan: RunPlan, defects: list[TrueDefect]) -> list[Event]:
    """Each defect: an image pair when it passed; per camera the defects go in batches of one
    coil (the box's), sent ``batch_every_s`` after the first of them or when the coil changes."""
    rng = random.Random(plan.seed * 7919 + 1)
    events = []
    pending: dict[str, list[tuple[float, str, dict]]] = {camera: [] for camera in plan.cameras}

    def flush(camera: str, at: float) -> None:
        items = pending[camera]
        if items:
            events.append(Event(at, "batch", camera, {"coil_number": items[0][1],
                                                       "defects": [item for _, _, item in items]}))
            items.clear()

    for d in defects:
        at = (d.passed_at - plan.start).total_seconds()
        items = pending[d.camera]
        if items and (items[0][1] != d.box_coil or at - items[0][0] >= plan.batch_every_s):
            flush(d.camera, at)
        width, height = rng.randrange(6, 40), rng.randrange(6, 30)
        item = {"event_id": d.event_id, "defect_type": d.defect_type,
                "confidence_score": round(rng.uniform(0.55, 0.99), 3),
                "defect_position_x": rng.randrange(10, 280), "defect_position_y": rng.randrange(10, 120),
                "defect_size_width": width, "defect_size_height": height,
                "detection_time": d.captured_at.isoformat(timespec="milliseconds"), "camera_id": d.camera}
        events.append(Event(at, "pair", d.camera, {"coil_number": d.box_coil, **item}))
        items.append((at, d.box_coil, item))
    for camera, items in pending.items():
        if items:
            flush(camera, items[-1][0] + plan.batch_every_s)
    return events


def _heartbeats(plan: RunPlan, duration: float, when) -> list[Event]:
    if plan.heartbeat_every_s <= 0:
        return []
    events = []
    every = plan.heartbeat_every_s
    for camera in plan.cameras:
        offset = timedelta(seconds=plan.clock_offsets_s.get(camera, 0.0))
        begin = 0.0
        while begin <= duration:
            end = begin + every
            blind = sum(max(0.0, min(end, b) - max(begin, a)) for c, a, b in plan.camera_gaps if c == camera)
            expected = int(round(plan.fps * every))
            inspected = int(round(plan.fps * (every - blind)))
            events.append(Event(end, "heartbeat", camera, {
                "camera_id": camera, "box_id": f"sim-{camera}",
                "period_start": (when(begin) + offset).isoformat(timespec="milliseconds"),
                "period_end": (when(end) + offset).isoformat(timespec="milliseconds"),
                "frames_inspected": inspected, "frames_expected": expected}))
            begin = end
    return events
