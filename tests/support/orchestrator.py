"""Helpers for the orchestrator's tests: settings in a temp dir, child specs, waiting."""

from __future__ import annotations

import os
import sys

from twisted.internet import defer, reactor, task

from ccl.config import load_config
from ccl.orchestrator.services import ChildSpec, Check, child_environment, wrap
from ccl.orchestrator.settings import Settings
from tests.support.children import program
from tests.support.waiting import wait_for  # noqa: F401 (imported from here by tests)

#: Fast settings for tests (seconds); each test may override.
FAST = {
    "grace": "1", "health_interval": "0.1", "health_timeout": "5", "health_failures": "3",
    "start_timeout": "10", "stable_after": "5", "restart_delay": "0.2", "restart_delay_max": "0.5",
    "fatal_after": "4", "metrics_interval": "0.2", "alert_interval": "0.2", "down_alert_after": "0",
    "host_interval": "0.2",
}


def environ(testcase, **overrides) -> dict[str, str]:
    """CCL_* settings with a private var/ and logs/ under the test's temp dir."""
    base = os.path.abspath(testcase.mktemp())
    os.makedirs(base)
    values = {"CCL_PATHS_VAR": os.path.join(base, "var"), "CCL_PATHS_LOGS": os.path.join(base, "logs"),
              "CCL_IMAGES_ROOT": os.path.join(base, "images")}
    for key, value in {**FAST, **overrides}.items():
        values[f"CCL_ORCHESTRATOR_{key.upper()}"] = str(value)
    return values


def settings(testcase, **overrides) -> Settings:
    return Settings.from_config(load_config(environ(testcase, **overrides)))


def spec(name: str, script: str, *args: str, checks: tuple[Check, ...] = (), metrics_url: str | None = None,
         stop_signal: str = "TERM") -> ChildSpec:
    argv = wrap([sys.executable, program(script), *args], stop_signal)
    return ChildSpec(id=name, argv=argv, env=child_environment(), cwd=os.getcwd(), checks=checks,
                     metrics_url=metrics_url, stop_signal=stop_signal)


def http_spec(name: str, port: int, sick_file: str | None = None) -> ChildSpec:
    args = (str(port),) + ((sick_file,) if sick_file else ())
    return spec(name, "serve_health", *args, checks=(Check("http", f"http://127.0.0.1:{port}/health"),),
                metrics_url=f"http://127.0.0.1:{port}/metrics")


def pause(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


def process_exists(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
