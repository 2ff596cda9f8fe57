"""The ``[ui]`` settings, read and checked once at start-up (ccl/data/ccl.ini documents each)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import attrs

from ccl.adapters.peer_images import ImageHostSettings
from ccl.adapters.tls import ca_file
from ccl.adapters.reports.settings import ReportSettings
from ccl.application.accounts import SessionPolicy
from ccl.config import Config, ConfigError
from ccl.domain.quality.settings import QualitySettings
from ccl.domain.telegrams import LayoutError, load_layouts
from ccl.orchestrator.services import listener


@attrs.frozen
class UISettings:
    listen: str
    orchestrator_url: str
    #: The orchestrator's bearer token is read from this file at each call (it may appear later).
    orchestrator_token: Path
    policy: SessionPolicy
    #: auto (Secure when the request came over TLS) or always
    secure_cookie: str
    #: Folder with templates/ and static/.
    web_root: Path
    stats_refresh_seconds: int
    #: How often an open event stream checks that its session still lives.
    stream_session_check_seconds: float
    #: The image store's root: image files are served only from below it.
    image_root: Path
    #: The telegram layout file (``[mes] layout``; None: the packaged one), for the byte views of 통신 진단.
    layout_path: str | None = None
    #: ``[tls] ca_file``: the CA an https orchestrator_url is verified with (None: the system's store).
    tls_ca_file: str | None = None
    #: Coil tracking's weld zone (``[tracking] weld_zone_m``), shaded on the coil map and bar.
    weld_zone_m: float = 0.0
    #: ``[quality]``: how defects are zoned when a review re-grades a coil (docs/quality.md)
    quality: QualitySettings = QualitySettings()
    #: The coil report, accuracy figures and training export (``[report]``).
    report: ReportSettings = attrs.field(factory=ReportSettings)
    #: Which host this is and where the other hosts' images are fetched from (``[images]``).
    image_hosts: ImageHostSettings = ImageHostSettings(host_name="localhost")

    @classmethod
    def from_config(cls, config: Config) -> UISettings:
        """Raise ConfigError for any bad [ui] setting, before anything starts."""
        u = "ui"
        secure_cookie = config.get(u, "secure_cookie").lower()
        if secure_cookie not in ("auto", "always"):
            raise ConfigError(f"{config.where(u, 'secure_cookie')}: must be auto or always")
        url = config.get(u, "orchestrator_url") or listener(config, "orchestrator", "listen").url()
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{config.where(u, 'orchestrator_url')}: {url!r} is not an http:// or https:// URL")
        root = _web_root(config)
        if not (root / "templates" / "base.html").is_file():
            raise ConfigError(f"{config.where(u, 'web_root')}: no templates/base.html under {root}")
        return cls(
            listen=config.get_endpoint(u, "listen"),
            orchestrator_url=url,
            orchestrator_token=config.get_path("paths", "var") / "orchestrator.token",
            policy=SessionPolicy(
                idle=timedelta(minutes=config.get_int(u, "session_idle_minutes", 1, 24 * 60)),
                absolute=timedelta(hours=config.get_int(u, "session_max_hours", 1, 24 * 30)),
                lockout_failures=config.get_int(u, "lockout_failures", 1, 100),
                lockout=timedelta(minutes=config.get_int(u, "lockout_minutes", 1, 24 * 60)),
            ),
            secure_cookie=secure_cookie,
            web_root=root,
            stats_refresh_seconds=config.get_int(u, "stats_refresh_seconds", 1, 86_400),
            stream_session_check_seconds=config.get_float(u, "stream_session_check_seconds", 0.05, 3600),
            image_root=config.get_path("images", "root"),
            layout_path=_layout_path(config),
            tls_ca_file=ca_file(config),
            weld_zone_m=config.get_float("tracking", "weld_zone_m", 0, 10_000),
            quality=QualitySettings.from_config(config),
            report=ReportSettings.from_config(config),
            image_hosts=ImageHostSettings.from_config(config),
        )


def _layout_path(config: Config) -> str | None:
    """``[mes] layout`` (None: the packaged file), refused at start-up when it does not load."""
    path = config.get("mes", "layout") or None
    try:
        load_layouts(path)
    except LayoutError as error:
        raise ConfigError(f"{config.where('mes', 'layout')}: {error}") from None
    return path


def _web_root(config: Config) -> Path:
    """``[ui] web_root``; when empty, the checkout's ``web/``, else the installed share/ccl/web."""
    if config.get("ui", "web_root"):
        return config.get_path("ui", "web_root")
    checkout = Path(__file__).resolve().parents[4] / "web"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "ccl" / "web"
