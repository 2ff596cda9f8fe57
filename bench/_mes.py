"""What the MES benchmarks share: a throw-away cluster and `twistd ccl-mes` as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402


def settle_disk(dsn: str) -> None:
    """Before a latency run: write out what the set-up (a fresh cluster, the migrations, an
    earlier run) left dirty, so that its writeback does not slow the journal's syncs during
    the measurement. Blocking: call it in a thread from a reactor."""
    with psycopg2.connect(dsn) as connection:
        connection.autocommit = True
        connection.cursor().execute("CHECKPOINT")
    os.sync()
    time.sleep(1.0)


class MesBench:
    """A cluster with fsync on (as the plant's database), migrated; ``start`` runs ccl-mes on it."""

    def __init__(self, prefix: str = "ccl-bench-"):
        self.work = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.work, 0o755)
        self.cluster = LocalCluster(self.work / "pg", free_port())
        self.service: subprocess.Popen | None = None
        self.cluster.init(trust=True)
        self.cluster.start()
        self.dsn = self.cluster.superuser_dsn("postgres")
        migrate(self.dsn)

    def start(self, listen_port: int, settings: dict[str, str], *, boot: str = "",
              twistd_args: tuple[str, ...] = ()) -> subprocess.Popen:
        """Run ``twistd -n ccl-mes`` with ``CCL_*`` ``settings`` (the caller's own CCL_ variables
        are dropped) and wait until it listens on ``listen_port``. ``boot``: Python run first
        (experiments). Its log is ``work/service.log``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=self.dsn, CCL_PATHS_VAR=str(self.work / "var"),
                   **settings)
        (self.work / "var").mkdir(exist_ok=True)
        log = open(self.work / "service.log", "wb")
        self.service = subprocess.Popen(
            [sys.executable, "-c", boot + "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
             "--logfile=-", *twistd_args, "ccl-mes"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.work / "var")
        log.close()
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", listen_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return self.service

    def close(self, keep_log: str | None = None) -> None:
        if self.service is not None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(20)
            except subprocess.TimeoutExpired:
                self.service.kill()
        self.cluster.destroy()
        if keep_log and (self.work / "service.log").exists():
            shutil.copy(self.work / "service.log", keep_log)
        shutil.rmtree(self.work, ignore_errors=True)
