"""The ``[tracking]`` settings: the line's geometry, its clocks and its tolerances."""

from __future__ import annotations

from typing import Any

import attrs

from ccl.config import ConfigError as TrackingSettingsError


@attrs.frozen
class Camera:
    """One inspection camera: where it sits and how its box's clock relates to the server's."""

    camera_id: str
    #: metres beyond ``wpd_to_camera_m`` (the second camera of a pair sits a little further on)
    offset_m: float = 0.0
    #: seconds the box's clock runs ahead of the server's (negative: behind);
    #: detection time = captured_at - clock_offset_s
    clock_offset_s: float = 0.0
    #: the strip surface it inspects (top or bottom)
    surface: str = "top"


@attrs.frozen
class TrackingSettings:
    wpd_to_camera_m: float = 50.0
    camera_to_shear_m: float = 200.0
    cameras: tuple[Camera, ...] = (Camera("top", surface="top"), Camera("bottom", surface="bottom"))
    #: metres on either side of a weld that count as the weld zone
    weld_zone_m: float = 2.0
    #: longest wait between two speed samples (TC 4003) that still counts as gap-free
    max_speed_gap_s: float = 4.5
    #: a telegram received this much later than its own send time (after the MES clock's
    #: usual offset) is late: its send time is used instead of its receipt
    late_after_s: float = 2.0
    #: integrated and MES lengths disagree when they differ by more than the larger of these
    length_tolerance_m: float = 5.0
    length_tolerance_percent: float = 0.5
    #: resolution of line_speed in TC 4003 (m/min); half of it bounds the rounding error
    speed_resolution_mpm: float = 1.0
    #: how well a box stamp (captured_at/detection_time) is known after the clock offset (s)
    box_time_uncertainty_s: float = 0.1
    #: how well received_at stands for the detection time when the box sent none (s)
    received_time_uncertainty_s: float = 1.0
    #: how well received_at stands for the moment a telegram's event happened (s)
    telegram_time_uncertainty_s: float = 0.5
    #: TC 4001 cut_mode values whose piece is scrap (a head or tail crop), not a coil
    scrap_cut_modes: frozenset[int] = frozenset()

    def camera(self, camera_id: str) -> Camera | None:
        for camera in self.cameras:
            if camera.camera_id == camera_id:
                return camera
        return None

    def camera_distance(self, camera: Camera) -> float:
        """Metres of strip from the weld point detector to ``camera``."""
        return self.wpd_to_camera_m + camera.offset_m

    @property
    def shear_distance(self) -> float:
        """Metres of strip from the weld point detector to the exit shear."""
        return self.wpd_to_camera_m + self.camera_to_shear_m

    def length_tolerance(self, length_m: float) -> float:
        return max(self.length_tolerance_m, abs(length_m) * self.length_tolerance_percent / 100.0)

    @classmethod
    def from_config(cls, config: Any) -> "TrackingSettings":
        """Read ``[tracking]`` of a ccl.config.Config (any object with its typed getters)."""
        s = "tracking"
        names = config.get_list(s, "cameras")
        if not names:
            raise TrackingSettingsError(f"{config.where(s, 'cameras')}: at least one camera id is required")
        offsets = _pairs(config, "camera_offsets_m", names, float)
        clocks = _pairs(config, "camera_clock_offsets_s", names, float)
        surfaces = _pairs(config, "camera_surfaces", names, str)
        cameras = tuple(Camera(name, offsets.get(name, 0.0), clocks.get(name, 0.0), surfaces.get(name, name))
                        for name in names)
        try:
            modes = frozenset(int(m) for m in config.get_list(s, "scrap_cut_modes"))
        except ValueError:
            raise TrackingSettingsError(f"{config.where(s, 'scrap_cut_modes')}: whole numbers, comma-separated") from None
        return cls(
            wpd_to_camera_m=config.get_float(s, "wpd_to_camera_m", 0, 100_000),
            camera_to_shear_m=config.get_float(s, "camera_to_shear_m", 0, 100_000),
            cameras=cameras,
            weld_zone_m=config.get_float(s, "weld_zone_m", 0, 10_000),
            max_speed_gap_s=config.get_float(s, "max_speed_gap_s", 0.1, 86_400),
            late_after_s=config.get_float(s, "late_after_s", 0.1, 86_400),
            length_tolerance_m=config.get_float(s, "length_tolerance_m", 0, 100_000),
            length_tolerance_percent=config.get_float(s, "length_tolerance_percent", 0, 100),
            speed_resolution_mpm=config.get_float(s, "speed_resolution_mpm", 0, 100),
            box_time_uncertainty_s=config.get_float(s, "box_time_uncertainty_s", 0, 3600),
            received_time_uncertainty_s=config.get_float(s, "received_time_uncertainty_s", 0, 3600),
            telegram_time_uncertainty_s=config.get_float(s, "telegram_time_uncertainty_s", 0, 3600),
            scrap_cut_modes=modes,
        )


def _pairs(config: Any, key: str, cameras: list[str], kind) -> dict:
    """``camera:value, camera:value`` of ``[tracking] key``; every camera named must be in ``cameras``."""
    found = {}
    for item in config.get_list("tracking", key):
        name, sep, text = item.partition(":")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise TrackingSettingsError(f"{config.where('tracking', key)}: {item!r} is not camera:value")
        if name not in cameras:
            raise TrackingSettingsError(f"{config.where('tracking', key)}: camera {name!r} is not in [tracking] cameras")
        try:
            found[name] = kind(text)
        except ValueError:
            raise TrackingSettingsError(f"{config.where('tracking', key)}: {text!r} is not a number") from None
    return found
