"""The ``[periodic]`` and ``[quality]`` settings, and where a defect sits across the strip.

Across the width a defect is known in its image's pixels (``defect_position_x`` + half its
``defect_size_width``). Each camera's calibration turns that into millimetres from the strip's
edge: ``(pixels - edge_px) * mm_per_px``. Uncalibrated (the defaults) a pixel counts as a
millimetre from pixel 0, so the tolerances in mm are tolerances in pixels until an engineer
measures the cameras.
"""

from __future__ import annotations

from typing import Any

import attrs

from ccl.config import ConfigError
from ccl.domain.quality.periodic import PeriodicSettings


def periodic_from_config(config: Any) -> PeriodicSettings:
    s = "periodic"
    try:
        return PeriodicSettings(
            min_pitch_m=config.get_float(s, "min_pitch_m", 0.01, 1000),
            max_pitch_m=config.get_float(s, "max_pitch_m", 0.01, 1000),
            pitch_tolerance_m=config.get_float(s, "pitch_tolerance_m", 0.0001, 100),
            cross_tolerance_mm=config.get_float(s, "cross_tolerance_mm", 0.01, 10_000),
            min_members=config.get_int(s, "min_members", 3, 10_000),
            max_consecutive_misses=config.get_int(s, "max_consecutive_misses", 0, 100),
            min_fill_ratio=config.get_float(s, "min_fill_ratio", 0.01, 1),
            roll_tolerance=config.get_float(s, "roll_tolerance", 0.0001, 1),
            max_chance=config.get_float(s, "max_chance", 1e-300, 0.999),
            max_window_defects=config.get_int(s, "max_window_defects", 3, 1_000_000),
        )
    except ValueError as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"[periodic]: {error}") from None


@attrs.frozen
class QualitySettings:
    live: bool = True
    mm_per_px: dict[str, float] = attrs.field(factory=dict)
    edge_px: dict[str, float] = attrs.field(factory=dict)
    edge_zone_mm: float = 50.0
    alarm_check_s: float = 5.0
    line_speed_fresh_s: float = 15.0

    def cross_mm(self, camera_id: str, x_px: float | None, width_px: float | None) -> float | None:
        """Millimetres from the strip's edge of a defect's centre, or None without a position."""
        if x_px is None:
            return None
        centre = x_px + (width_px or 0) / 2.0
        return (centre - self.edge_px.get(camera_id, 0.0)) * self.mm_per_px.get(camera_id, 1.0)

    def area_mm2(self, camera_id: str, width_px: float | None, height_px: float | None) -> float | None:
        """The defect's box in mm² (square pixels assumed), or None without a size."""
        if width_px is None or height_px is None:
            return None
        scale = self.mm_per_px.get(camera_id, 1.0)
        return width_px * height_px * scale * scale

    def zone(self, in_weld_zone: bool, cross_mm: float | None, strip_width_mm: float | None) -> str:
        """weld (near a weld), edge (within edge_zone_mm of either edge) or centre."""
        if in_weld_zone:
            return "weld"
        if cross_mm is not None:
            if cross_mm <= self.edge_zone_mm:
                return "edge"
            if strip_width_mm and cross_mm >= strip_width_mm - self.edge_zone_mm:
                return "edge"
        return "centre"

    @classmethod
    def from_config(cls, config: Any) -> "QualitySettings":
        s = "quality"
        return cls(
            live=config.get_bool(s, "live"),
            mm_per_px=_pairs(config, "camera_mm_per_px"),
            edge_px=_pairs(config, "camera_edge_px"),
            edge_zone_mm=config.get_float(s, "edge_zone_mm", 0, 10_000),
            alarm_check_s=config.get_float(s, "alarm_check_s", 0.1, 3600),
            line_speed_fresh_s=config.get_float(s, "line_speed_fresh_s", 1, 3600),
        )


def _pairs(config: Any, key: str) -> dict[str, float]:
    found = {}
    for item in config.get_list("quality", key):
        name, sep, text = item.partition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            found[name.strip()] = float(text)
        except ValueError:
            raise ConfigError(f"{config.where('quality', key)}: {item!r} is not camera:number") from None
    return found
