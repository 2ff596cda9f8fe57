"""A private PostgreSQL cluster for tests that stop and restart the database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ccl.adapters.storage.localdb import LocalCluster, free_port
from ccl.adapters.storage.migrations import migrate


def private_cluster(testcase) -> tuple[LocalCluster, str]:
    """Start a migrated throw-away cluster, destroyed at clean-up; return it and its DSN."""
    base = Path(tempfile.mkdtemp(prefix="ccl-pg-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    testcase.addCleanup(lambda: (cluster.destroy(), base.rmdir() if base.exists() else None))
    cluster.init(trust=True)
    cluster.start(fast=True)
    dsn = cluster.superuser_dsn("postgres")
    migrate(dsn)
    return cluster, dsn
