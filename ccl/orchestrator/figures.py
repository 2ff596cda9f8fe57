"""``GET /metrics`` of the orchestrator: per-service up, restarts, CPU, RSS; disks; the host; children's own figures."""

from __future__ import annotations

from pathlib import Path

import psutil

from ccl.domain.metrics import Registry


def process_figures(pid: int | None) -> dict | None:
    """CPU seconds and RSS of a child and its own children (PostgreSQL's backends)."""
    if pid is None:
        return None
    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return None
    cpu = rss = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu += times.user + times.system
            rss += process.memory_info().rss
        except psutil.Error:
            continue
    return {"cpu_seconds": cpu, "rss_bytes": rss, "processes": len(processes)}


def _labelled(values: dict) -> dict:
    return {(("service", name),): value for name, value in values.items()}


def render(monitor, volumes: dict[str, Path], open_alerts: int | None = None, host: dict | None = None) -> str:
    children = list(monitor.children.values())
    figures = {c.id: process_figures(c.pid) for c in children}
    registry = Registry(prefix="ccl_orchestrator_")
    registry.gauge("service_up", "1 when the service is running and passed its last health check",
                   read=lambda: _labelled({c.id: int(c.state == "running" and c.health.get("status") != "failing")
                                           for c in children}))
    registry.gauge("service_state", "current state of the service (1 for the state it is in)",
                   read=lambda: {(("service", c.id), ("state", c.state)): 1 for c in children})
    restarts = registry.counter("service_restarts_total", "restarts of the service by the orchestrator")
    for c in children:
        restarts.inc(c.restarts, service=c.id)
    registry.gauge("service_cpu_seconds", "CPU seconds used by the service's current processes",
                   read=lambda: _labelled({k: v["cpu_seconds"] for k, v in figures.items() if v}))
    registry.gauge("service_rss_bytes", "resident memory of the service's processes",
                   read=lambda: _labelled({k: v["rss_bytes"] for k, v in figures.items() if v}))
    registry.gauge("service_uptime_seconds", "seconds since the service's process started",
                   read=lambda: _labelled({c.id: c.status(monitor.seconds())["uptime"] or 0 for c in children}))
    # From the host reading (taken in a thread): statvfs on a stalled mount must not stop the reactor.
    disks = {disk["volume"]: disk for disk in (host or {}).get("disks", []) if disk["volume"] in volumes}
    registry.gauge("disk_used_bytes", "bytes used on the volume (images, database)",
                   read=lambda: {(("volume", k),): v["used"] for k, v in disks.items() if v})
    registry.gauge("disk_total_bytes", "size of the volume (images, database)",
                   read=lambda: {(("volume", k),): v["total"] for k, v in disks.items() if v})
    registry.gauge("disk_used_ratio", "share of the volume in use, 0..1",
                   read=lambda: {(("volume", k),): v["percent"] / 100 for k, v in disks.items() if v})
    if open_alerts is not None:
        registry.gauge("alerts_open", "alerts raised and not cleared").set(open_alerts)
    if host is not None:
        _host_gauges(registry, host)
    text = registry.render()
    return text + _children_samples(children)


def _host_gauges(registry: Registry, host: dict) -> None:
    """The host's last reading (``ccl.orchestrator.host``); rates only once two readings exist."""
    cpu, memory, network = host["cpu"], host["memory"], host["network"]
    if cpu["percent"] is not None:
        registry.gauge("host_cpu_percent", "CPU in use over the last reading interval, 0..100").set(cpu["percent"])
    for minutes, value in zip((1, 5, 15), cpu["load"]):
        registry.gauge(f"host_load{minutes}", f"load average over {minutes} minute(s)").set(value)
    registry.gauge("host_memory_total_bytes", "memory of the host").set(memory["total"])
    registry.gauge("host_memory_used_bytes", "memory in use (total - available)").set(memory["used"])
    for key, direction in (("rx_bytes_per_s", "received"), ("tx_bytes_per_s", "sent")):
        rates = {(("interface", i["name"]),): i[key] for i in network["interfaces"] if i[key] is not None}
        if rates:
            registry.gauge(f"host_network_{direction}_bytes_per_second",
                           f"bytes {direction} per second over the last reading interval",
                           read=lambda rates=rates: rates)


def _children_samples(children) -> str:
    """Each child's own /metrics samples, with a ``service`` label, grouped by name."""
    by_name: dict[str, list[str]] = {}
    for child in children:
        for name, labels, value in child.metrics:
            merged = dict(labels, service=child.id)
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(merged.items()))
            by_name.setdefault(name, []).append(f"{name}{{{label_text}}} {_number(value)}")
    lines = []
    for name in sorted(by_name):
        lines.append(f"# HELP {name} reported by the service itself (scraped by the orchestrator)")
        lines.extend(by_name[name])
    return "\n".join(lines) + ("\n" if lines else "")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
