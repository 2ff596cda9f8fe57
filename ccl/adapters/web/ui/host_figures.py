"""The host figures of the orchestrator's ``/status`` as the 시스템 page shows them.

The texts are made here once, for the page and for its 5-second refresh (``host_view`` in
``/api/system/services``), so the browser only puts them in place.
"""

from __future__ import annotations

import datetime

from ccl.domain.telegrams import PLANT_TZ

#: The volumes the orchestrator measures, by the page's label (Korean; English in i18n).
VOLUMES = {"images": "이미지 저장소", "journal": "MES 저널", "database": "데이터베이스"}

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(value: float | None) -> str:
    """Bytes in the largest unit below 1024 of it: ``3.1 GiB``; ``-`` for no value."""
    if value is None:
        return "-"
    value = float(value)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{size(value)}/s"


def _plant_time(iso: str | None) -> str:
    """An ISO instant in plant time (the page's clock), as the other tables show times."""
    try:
        return datetime.datetime.fromisoformat(iso).astimezone(PLANT_TZ).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return ""


def host_view(host: dict | None) -> dict | None:
    """Display texts of the host figures (None when the orchestrator sent none)."""
    if not isinstance(host, dict):
        return None
    cpu, memory, network = host.get("cpu") or {}, host.get("memory") or {}, host.get("network") or {}
    load = cpu.get("load") or []
    return {
        "sampled_at": _plant_time(host.get("sampled_at")),
        "cpu": f"{_percent(cpu.get('percent'))} ({cpu.get('count', '-')} CPU)",
        "load": " · ".join(f"{value:.2f}" for value in load) or "-",
        "memory": f"{size(memory.get('used'))} / {size(memory.get('total'))} ({_percent(memory.get('percent'))})",
        "network_in": _rate(network.get("rx_bytes_per_s")),
        "network_out": _rate(network.get("tx_bytes_per_s")),
        "disks": [{"volume": disk.get("volume"), "label": VOLUMES.get(disk.get("volume"), disk.get("volume")),
                   "path": disk.get("path"), "used": size(disk.get("used")), "free": size(disk.get("free")),
                   "total": size(disk.get("total")), "percent": _percent(disk.get("percent"))}
                  for disk in host.get("disks") or [] if isinstance(disk, dict)],
    }
