"""The settings of ccl-images and ccl-defects, read and checked once at start-up
(``[images]``, ``[defects]``, ``[ingest]``, ``[database]`` of ccl/data/ccl.ini)."""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import attrs

from ccl.adapters.peer_images import host_name
from ccl.config import Config
from ccl.domain.ingest.retention import Policy

MB = 1024 * 1024


def worker_threads(configured: int) -> int:
    """Threads receiving, checking and placing image files: ``configured``, or for 0 the
    number of CPUs + 2. More only make the uploads wait for each other (for the GIL and the
    CPUs): on the 2-core reference machine 10 threads took 92-94 pairs/s, 3-4 took 101-106
    (bench/ingest_images.py, concurrency 8)."""
    return configured or (os.cpu_count() or 2) + 2


@attrs.frozen
class IngestSettings:
    """What both ingestion services share: who gets in, the database pool, the boxes' links."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    pool_size: int
    link_save_interval: float
    link_silent_after: float

    @classmethod
    def from_config(cls, config: Config) -> "IngestSettings":
        return cls(
            networks=tuple(config.get_networks("ingest", "allow")),
            pool_size=config.get_int("database", "pool_size", 1, 64),
            link_save_interval=config.get_float("ingest", "link_save_seconds", 0.1, 3600),
            link_silent_after=config.get_float("ingest", "link_silent_seconds", 1, 86400),
        )


@attrs.frozen
class ImagesSettings:
    listen: str
    root: Path
    max_file_bytes: int
    max_pixels: int
    thumbnail_size: int
    policy: Policy
    retention_interval: float
    worker_threads: int
    ingest: IngestSettings
    #: ``[images] host_name``: written into every image row (images.stored_on).
    host_name: str = "localhost"

    @classmethod
    def from_config(cls, config: Config, *, listen: str | None = None) -> "ImagesSettings":
        """``listen``: the command line's endpoint, over the configured one."""
        i = "images"
        return cls(
            listen=listen or config.get_endpoint(i, "listen"),
            root=config.get_path(i, "root"),
            max_file_bytes=config.get_int(i, "max_file_mb", 1, 1024) * MB,
            max_pixels=config.get_int(i, "max_megapixels", 1, 1000) * 1_000_000,
            thumbnail_size=config.get_int(i, "thumbnail_size", 32, 2048),
            policy=Policy(max_age_days=config.get_float(i, "retention_days", 0),
                          high_percent=config.get_float(i, "disk_high_percent", 1, 100),
                          low_percent=config.get_float(i, "disk_low_percent", 1, 100),
                          max_store_bytes=int(config.get_float(i, "max_store_gb", 0) * 1024 ** 3)),
            retention_interval=config.get_float(i, "retention_interval", 1),
            worker_threads=worker_threads(config.get_int(i, "worker_threads", 0, 256)),
            ingest=IngestSettings.from_config(config),
            host_name=host_name(config),
        )


@attrs.frozen
class DefectsSettings:
    listen: str
    max_batch: int
    max_body_bytes: int
    heartbeat_max_period: timedelta
    ingest: IngestSettings

    @classmethod
    def from_config(cls, config: Config, *, listen: str | None = None) -> "DefectsSettings":
        """``listen``: the command line's endpoint, over the configured one."""
        d = "defects"
        return cls(
            listen=listen or config.get_endpoint(d, "listen"),
            max_batch=config.get_int(d, "max_batch", 1, 1_000_000),
            max_body_bytes=config.get_int(d, "max_body_mb", 1, 1024) * MB,
            heartbeat_max_period=timedelta(seconds=config.get_float(d, "heartbeat_max_seconds", 1, 86400)),
            ingest=IngestSettings.from_config(config),
        )
