"""Host figures for the 시스템 page and ``GET /host``: CPU, load, memory, disks, network.

psutil reads /proc and calls statvfs, which can stall on a busy or remote disk (an image
root on a NAS), so the readings are taken in a thread every ``host_interval`` seconds by a
LoopingCall, and the API, ``/metrics`` and the disk alert rule use the last reading (never
blocking the reactor). CPU % and network bytes per second
are differences of counters between two readings (``figures``, pure), so they are ``None``
until the second reading.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import psutil
from twisted.internet import defer, task, threads
from twisted.logger import Logger

from ccl.orchestrator.alerts import disk_usage
from ccl.orchestrator.child import iso

log = Logger()

#: Interfaces left out of the network totals: traffic that never leaves the host.
LOOPBACK = ("lo",)


@attrs.frozen
class Reading:
    """The host's counters at one instant (``at``: monotonic seconds, ``wall``: epoch seconds)."""

    at: float
    wall: float
    cpu_busy: float
    cpu_total: float
    cpu_count: int
    load: tuple[float, float, float]
    memory: dict
    disks: dict
    network: dict  # interface -> (bytes received, bytes sent)


def read_host(volumes: dict[str, Path]) -> Reading:
    """Take one reading (blocking: call it in a thread)."""
    times = psutil.cpu_times()
    # As psutil.cpu_percent does on Linux: guest time is already in user and nice, iowait is idle.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    memory = psutil.virtual_memory()
    nics = psutil.net_io_counters(pernic=True)
    return Reading(
        at=time.monotonic(), wall=time.time(),
        cpu_busy=total - idle, cpu_total=total, cpu_count=psutil.cpu_count() or 1,
        load=tuple(round(value, 2) for value in os.getloadavg()),
        memory={"total": memory.total, "available": memory.available, "used": memory.total - memory.available,
                "percent": round(100.0 * (memory.total - memory.available) / memory.total, 1) if memory.total else 0.0},
        disks={name: disk_usage(path) for name, path in volumes.items()},
        network={name: (counters.bytes_recv, counters.bytes_sent) for name, counters in nics.items()},
    )


def _rate(before: int, after: int, seconds: float) -> float | None:
    if seconds <= 0 or after < before:  # a counter reset (interface re-created): no figure this time
        return None
    return round((after - before) / seconds, 1)


def figures(previous: Reading | None, current: Reading) -> dict:
    """The JSON figures of ``current``; rates against ``previous`` (None: rates unknown yet)."""
    cpu_percent = None
    rates: dict[str, tuple[float | None, float | None]] = {}
    if previous is not None:
        busy, total = current.cpu_busy - previous.cpu_busy, current.cpu_total - previous.cpu_total
        cpu_percent = round(min(100.0, max(0.0, 100.0 * busy / total)), 1) if total > 0 else 0.0
        seconds = current.at - previous.at
        for name, (received, sent) in current.network.items():
            if name in previous.network:
                before_received, before_sent = previous.network[name]
                rates[name] = (_rate(before_received, received, seconds), _rate(before_sent, sent, seconds))
    interfaces = [{"name": name, "rx_bytes_per_s": rx, "tx_bytes_per_s": tx,
                   "rx_bytes": current.network[name][0], "tx_bytes": current.network[name][1]}
                  for name, (rx, tx) in sorted(rates.items())]
    outside = [i for i in interfaces if i["name"] not in LOOPBACK]

    def total(key: str) -> float | None:
        if previous is None or any(i[key] is None for i in outside):
            return None
        return round(sum(i[key] for i in outside), 1)

    return {
        "sampled_at": iso(current.wall),
        "cpu": {"percent": cpu_percent, "count": current.cpu_count, "load": list(current.load)},
        "memory": dict(current.memory),
        "disks": [dict(usage, volume=name) for name, usage in current.disks.items() if usage is not None],
        "network": {"rx_bytes_per_s": total("rx_bytes_per_s"), "tx_bytes_per_s": total("tx_bytes_per_s"),
                    "interfaces": interfaces},
    }


class HostSampler:
    """Reads the host every ``interval`` seconds in a thread; ``latest()`` is the last figures."""

    def __init__(self, reactor, volumes: dict[str, Path], interval: float, read=read_host):
        self._reactor = reactor
        self.volumes = volumes
        self.interval = interval
        self._read = read
        self._previous: Reading | None = None
        self._latest: dict | None = None
        self._pending: defer.Deferred | None = None
        self._loop = task.LoopingCall(self.sample)
        self._loop.clock = reactor

    def latest(self) -> dict | None:
        """The figures of the last reading (None before the first one finished)."""
        return None if self._latest is None else dict(self._latest, interval=self.interval)

    def disks(self) -> dict[str, dict | None]:
        """Usage of each volume at the last reading ({} before the first; None: not measurable)."""
        return {} if self._previous is None else dict(self._previous.disks)

    def start(self) -> None:
        self._loop.start(self.interval, now=True).addErrback(lambda f: log.failure("host sampling failed", f))

    def stop(self) -> defer.Deferred:
        """Stop sampling; fires once a reading in flight is done (its thread is not left behind)."""
        if self._loop.running:
            self._loop.stop()
        if self._pending is None:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._pending.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    def sample(self) -> defer.Deferred | None:
        """Take a reading in a thread (unless one is still running); fires when it is in ``latest()``."""
        if self._pending is not None:
            return None  # a slow disk: skip this tick rather than pile up threads
        self._pending = threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._read,
                                                  self.volumes)
        self._pending.addCallback(self._took)
        self._pending.addErrback(lambda failure: log.failure("host reading failed", failure))
        self._pending.addBoth(self._done)
        return self._pending

    def _took(self, reading: Reading) -> None:
        self._latest = figures(self._previous, reading)
        self._previous = reading

    def _done(self, result) -> None:
        self._pending = None
