"""What tracking reads (telegrams, detections, heartbeats) and what it writes (placements,
coil results, the delay log). Times are seconds since the epoch (UTC), lengths metres."""

from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class Telegram:
    """A stored TC 4001/4002/4003 row: its id, header send time, receipt time and values."""

    id: int
    sent_at: float
    received_at: float
    coil_number: str | None = None
    line_speed: int | None = None  # TC 4003, m/min
    cut_mode: int | None = None  # TC 4001
    winding_length: int | None = None  # TC 4001, m


@attrs.frozen(slots=True)
class Heartbeat:
    camera_id: str
    period_start: float
    period_end: float
    frames_inspected: int
    frames_expected: int | None = None


@attrs.frozen(slots=True)
class Detection:
    """A defect or an image, as tracking needs it."""

    kind: str  # "defect" | "image"
    id: int
    camera_id: str
    #: the box's stamp (detection_time / captured_at); None when the box sent none
    captured_at: float | None
    received_at: float
    box_coil: str


@attrs.frozen
class LineData:
    """The stored telegrams of one window (any order), the MES lengths of its coils
    (newest schedule: coil_number -> length_value or None) and the cameras' heartbeats."""

    speeds: tuple[Telegram, ...] = ()
    welds: tuple[Telegram, ...] = ()
    cuts: tuple[Telegram, ...] = ()
    schedules: dict[str, int | None] = attrs.field(factory=dict)
    heartbeats: tuple[Heartbeat, ...] = ()


@attrs.frozen(slots=True)
class Placement:
    kind: str
    id: int
    camera_id: str
    surface: str | None
    #: the detection time on the server's clock, and where it came from ("box" | "received")
    detected_at: float
    time_source: str
    #: placed | no_coil (before the first weld known) | no_speed | unknown_camera
    status: str
    tracked_coil: str | None = None
    metre: float | None = None
    uncertainty_m: float | None = None
    in_weld_zone: bool = False
    box_coil: str = ""
    coil_disagrees: bool = False
    exit_coil: str | None = None
    exit_piece: int | None = None
    exit_metre: float | None = None
    exit_scrap: bool = False
    #: the position was extrapolated past the newest speed sample: placed again when it comes
    provisional: bool = False
    #: when the server received the detection: where storage finds its row (defects are kept by
    #: month of receipt); not part of where it is, so not compared
    received_at: float | None = attrs.field(default=None, eq=False)


@attrs.frozen
class ExitCoil:
    """A piece of a coil between two shear cuts (TC 4001), in metres from the coil's head."""

    tracked_coil: str
    piece: int  # 1, 2, ... along the coil
    coil_number: str  # as the cut telegram named it
    start_m: float
    end_m: float
    cut_at: float
    cut_mode: int | None
    winding_length: int | None
    scrap: bool
    length_disagrees: bool


@attrs.frozen
class CoilResult:
    tracked_coil: str
    coil_number: str
    head_wpd_at: float
    tail_wpd_at: float | None
    head_at_camera: dict[str, float | None]
    tail_at_camera: dict[str, float | None]
    head_at_shear: float | None
    tail_at_shear: float | None
    #: weld to weld, integrated (None while the tail weld has not passed the detector)
    length_m: float | None
    length_uncertainty_m: float | None
    #: metres that passed each camera so far
    inspected_m: dict[str, float]
    mes_length_m: int | None
    length_disagrees: bool
    schedule_present: bool
    wpd_seen: bool  # head and tail welds both reported
    speed_gap_free: bool
    cut_seen: bool
    #: per camera: share of the coil's length inspected (0..1), None = unknown (no heartbeats)
    coverage: dict[str, float | None]
    #: running | complete | partial | unknown
    completeness: str
    head_crop_m: float | None
    tail_crop_m: float | None
    exit_coils: tuple[ExitCoil, ...] = ()


@attrs.frozen
class DelayEntry:
    """A line stop or a gap in the speed data, with the coil and metre under the first camera."""

    kind: str
    start: float
    end: float | None
    duration_s: float
    tracked_coil: str | None
    metre: float | None
