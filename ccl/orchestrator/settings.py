"""The ``[orchestrator]`` settings, read and checked once at start-up."""

from __future__ import annotations

from pathlib import Path

import attrs

from ccl.config import Config


@attrs.frozen
class Settings:
    listen: str
    token: str
    services: tuple[str, ...]
    var: Path
    logs: Path
    grace: float
    health_interval: float
    health_timeout: float
    health_failures: int
    tcp_check_interval: float
    start_timeout: float
    stable_after: float
    restart_delay: float
    restart_delay_max: float
    fatal_after: int
    metrics_interval: float
    log_max_bytes: int
    log_keep: int
    alert_interval: float
    down_alert_after: float
    restart_loop_count: int
    restart_loop_window: float
    disk_watermark: float
    db_volume: str
    mes_silent_after: float
    backlog_max: int
    host_interval: float
    nak_rate_max: float
    nak_rate_window: float
    nak_rate_min_telegrams: int
    pg_failures_max: int
    pg_failures_window: float
    pg_unavailable_after: float
    partitions_ahead: int

    @classmethod
    def from_config(cls, config: Config) -> "Settings":
        o = "orchestrator"
        return cls(
            listen=config.get_endpoint(o, "listen"),
            token=config.get(o, "token"),
            services=tuple(config.get_list(o, "services")),
            var=config.get_path("paths", "var"),
            logs=config.get_path("paths", "logs"),
            grace=config.get_float(o, "grace", 0.1, 3600),
            health_interval=config.get_float(o, "health_interval", 0.1, 3600),
            health_timeout=config.get_float(o, "health_timeout", 0.1, 600),
            health_failures=config.get_int(o, "health_failures", 1, 1000),
            tcp_check_interval=config.get_float(o, "tcp_check_interval", 0.1, 86400),
            start_timeout=config.get_float(o, "start_timeout", 1, 3600),
            stable_after=config.get_float(o, "stable_after", 0.1, 86400),
            restart_delay=config.get_float(o, "restart_delay", 0, 3600),
            restart_delay_max=config.get_float(o, "restart_delay_max", 0, 86400),
            fatal_after=config.get_int(o, "fatal_after", 1, 1000),
            metrics_interval=config.get_float(o, "metrics_interval", 0.1, 3600),
            log_max_bytes=config.get_int(o, "log_max_bytes", 4096),
            log_keep=config.get_int(o, "log_keep", 1, 1000),
            alert_interval=config.get_float(o, "alert_interval", 0.1, 3600),
            down_alert_after=config.get_float(o, "down_alert_after", 0, 86400),
            restart_loop_count=config.get_int(o, "restart_loop_count", 1, 100000),
            restart_loop_window=config.get_float(o, "restart_loop_window", 1, 86400 * 7),
            disk_watermark=config.get_float(o, "disk_watermark", 1, 100),
            db_volume=config.get(o, "db_volume"),
            mes_silent_after=config.get_float(o, "mes_silent_after", 1, 86400),
            backlog_max=config.get_int(o, "backlog_max", 0),
            host_interval=config.get_float(o, "host_interval", 0.1, 3600),
            nak_rate_max=config.get_float(o, "nak_rate_max", 0, 100),
            nak_rate_window=config.get_float(o, "nak_rate_window", 1, 86400),
            nak_rate_min_telegrams=config.get_int(o, "nak_rate_min_telegrams", 1),
            pg_failures_max=config.get_int(o, "pg_failures_max", 0),
            pg_failures_window=config.get_float(o, "pg_failures_window", 1, 86400),
            pg_unavailable_after=config.get_float(o, "pg_unavailable_after", 0, 86400),
            partitions_ahead=config.get_int("retention", "partitions_ahead", 1, 24),
        )
