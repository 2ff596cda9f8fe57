"""A real ``ccl-ui`` process (``python -m twisted ccl-ui``) on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ccl.adapters.storage.localdb import free_port

ROOT = Path(__file__).resolve().parents[2]


def start_ui_process(testcase, dsn: str, var: Path, image_root: Path) -> str:
    """Start the UI, stopped at clean-up; return its base URL once it accepts connections."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_PATHS_VAR=str(var),
               CCL_UI_LISTEN=f"tcp:{port}:interface=127.0.0.1", CCL_IMAGES_ROOT=str(image_root),
               CCL_UI_ORCHESTRATOR_URL="http://127.0.0.1:9")
    log = open(var / "ui.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format=text", "ccl-ui"], env=env,
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
            raise AssertionError(f"ccl-ui exited: {(var / 'ui.log').read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    raise AssertionError("ccl-ui did not start listening within 60 s")
