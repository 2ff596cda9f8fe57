"""Real service processes (``python -m twisted <plugin>``) on free loopback ports: the UI and,
for the browser test, the Jetson ingestion services that feed it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ccl.adapters.storage.localdb import free_port

ROOT = Path(__file__).resolve().parents[2]
#: plugin -> the setting that holds its listen endpoint
LISTEN = {"ccl-ui": "CCL_UI_LISTEN", "ccl-defects": "CCL_DEFECTS_LISTEN", "ccl-images": "CCL_IMAGES_LISTEN",
          "ccl-mes": "CCL_MES_LISTEN"}


def start_process(testcase, plugin: str, dsn: str, var: Path, image_root: Path, env: dict | None = None) -> str:
    """Start ``plugin``, stopped at clean-up; return its base URL (``http://127.0.0.1:PORT``)
    once it accepts connections. ``env``: settings of its own (``CCL_*``)."""
    port = free_port()
    given = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k == "CCL_VENV"}
    env.update(given)
    env.update(PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_PATHS_VAR=str(var), CCL_IMAGES_ROOT=str(image_root),
               CCL_UI_ORCHESTRATOR_URL="http://127.0.0.1:9", CCL_INGEST_ALLOW="127.0.0.1",
               CCL_DATABASE_POOL_SIZE="2", CCL_PATHS_LOGS=str(var / "logs"),
               CCL_MES_STATUS_LISTEN=f"tcp:{free_port()}:interface=127.0.0.1", CCL_GOKIWON_ENABLED="false")
    env[LISTEN[plugin]] = f"tcp:{port}:interface=127.0.0.1"
    logfile = var / f"{plugin}.log"
    log = open(logfile, "wb")
    process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format=text", plugin], env=env,
                               stdout=log, stderr=subprocess.STDOUT, cwd=str(var))

    def stop():
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    testcase.addCleanup(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{plugin} exited: {logfile.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{plugin} did not start listening within 60 s")


def start_ui_process(testcase, dsn: str, var: Path, image_root: Path) -> str:
    return start_process(testcase, "ccl-ui", dsn, var, image_root)
