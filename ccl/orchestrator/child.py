"""One child of the orchestrator: its runtime state, its status view, its output.

``Child`` is what the monitor knows about a service process (state, pid, exits, health,
scraped metrics); ``ChildProtocol`` turns its stdout and stderr into whole lines of its
log file; the helpers find and kill what a crashed child leaves behind.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import attrs
import psutil
from twisted.internet import protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccl.orchestrator.backoff import RestartPolicy
from ccl.orchestrator.logfiles import LineSplitter, RotatingLog
from ccl.orchestrator.services import ChildSpec

log = Logger()

STATES = ("starting", "running", "backoff", "stopping", "stopped", "fatal")


def iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(wall)) + f"{time.strftime('%z', time.localtime(wall))}"


@attrs.define(eq=False)
class Child:
    spec: ChildSpec
    log: RotatingLog
    policy: RestartPolicy
    state: str = "stopped"
    wanted: bool = False
    pid: int | None = None
    started_at: float | None = None        # reactor seconds, for uptimes
    started_wall: float | None = None
    restarts: int = 0
    restart_times: collections.deque = attrs.field(factory=lambda: collections.deque(maxlen=1000))
    last_exit: dict | None = None
    last_restart_reason: str | None = None
    health: dict = attrs.field(factory=lambda: {"status": "unknown"})
    reported: dict | None = None           # the service's own /health view (status, database)
    failures: int = 0
    checking: bool = False
    tcp_ok_at: float | None = None
    metrics: list = attrs.field(factory=list)
    metrics_at: float | None = None
    healthy_since: float | None = None
    restart_reason_pending: str | None = None
    pending_start: object = None           # IDelayedCall of a back-off restart
    murder: object = None                  # IDelayedCall of the SIGKILL after grace
    exit_waiters: list = attrs.field(factory=list)
    descendants: dict = attrs.field(factory=dict)  # pid -> create time, seen at the last check
    ready_waiters: list = attrs.field(factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    def alive(self) -> bool:
        return self.pid is not None

    def status(self, now: float) -> dict:
        return {
            "service": self.id,
            "id": self.id,
            "state": self.state,
            "wanted": self.wanted,
            "pid": self.pid,
            "started_at": iso(self.started_wall) if self.alive() else None,
            "uptime": round(now - self.started_at, 3) if self.alive() and self.started_at is not None else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_restart_reason": self.last_restart_reason,
            "health": dict(self.health, failures=self.failures, reported=self.reported,
                           checks=[check.describe() for check in self.spec.checks]),  # never the DSN
            "metrics": {_sample_name(name, labels): value for name, labels, value in self.metrics},
            "metrics_at": iso(self.metrics_at),
            "info": self.spec.info,
        }


def descendants(pid: int) -> dict[int, float]:
    try:
        return {p.pid: p.create_time() for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def kill_leftovers(child: "Child") -> None:
    for pid, created in child.descendants.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == created:  # the same process, not a reused pid
                process.kill()
                log.info("{service}: killed pid {pid} left behind by its parent", service=child.id, pid=pid)
        except psutil.Error:
            pass


def _sample_name(name: str, labels: dict) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class ChildProtocol(protocol.ProcessProtocol):
    """Splits the child's stdout and stderr into whole lines for its log file; reports the end."""

    def __init__(self, child: Child, ended: Callable[[Child, Failure], None]):
        self._ended = ended
        self._child = child
        self._out = LineSplitter()
        self._err = LineSplitter()

    def outReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self._child.log.write_lines(self._out.feed(data))

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self._child.log.write_lines(self._err.feed(data))

    def processEnded(self, reason) -> None:  # noqa: N802
        self._child.log.write_lines(self._out.flush() + self._err.flush())
        self._ended(self._child, reason)


