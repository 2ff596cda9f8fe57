"""The ``[report]`` settings (ccl/data/ccl.ini documents each), read and checked at start-up."""

from __future__ import annotations

from pathlib import Path

import attrs

from ccl.config import Config, ConfigError

NANUM = Path("/usr/share/fonts/truetype/nanum")


@attrs.frozen
class ReportSettings:
    font: Path = NANUM / "NanumGothic.ttf"
    font_bold: Path = NANUM / "NanumGothicBold.ttf"
    worst_images: int = 6
    accuracy_min_reviews: int = 20
    export_max_images: int = 50_000

    @classmethod
    def from_config(cls, config: Config) -> ReportSettings:
        """Raise ConfigError for a bad [report] setting (a font file that is not there included)."""
        fonts = {}
        for key in ("font", "font_bold"):
            path = config.get_path("report", key)
            if not path.is_file():
                raise ConfigError(f"{config.where('report', key)}: no font file {path}"
                                  " (Debian's fonts-nanum: scripts/install-system-packages.sh)")
            fonts[key] = path
        return cls(worst_images=config.get_int("report", "worst_images", 1, 12),
                   accuracy_min_reviews=config.get_int("report", "accuracy_min_reviews", 1, 1_000_000),
                   export_max_images=config.get_int("report", "export_max_images", 1, 10_000_000), **fonts)
