"""A throw-away primary and its streaming standby (PostgreSQL replication), for failover tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg2

from ccl.adapters.storage.localdb import LocalCluster, free_port
from ccl.adapters.storage.standby import StandbySource, allow_standby, make_standby, multi_host_dsn, set_synchronous
from tests.support.cluster import private_cluster
from tests.support.waiting import wait_for

PASSWORD = "replication-test-password"


def primary_and_standby(testcase, *, synchronous: bool = True) -> tuple[LocalCluster, LocalCluster, str]:
    """A migrated primary, a standby streaming from it (synchronous unless told), both destroyed
    at clean-up; returns them and the multi-host DSN (read-write) naming both."""
    primary, _ = private_cluster(testcase)
    # Started "fast" (synchronous_commit off on the command line, which no ALTER SYSTEM
    # overrides): then a commit would not wait for the standby.
    primary.stop()
    primary.start()
    allow_standby(primary, PASSWORD, network="127.0.0.1/32")
    base = Path(tempfile.mkdtemp(prefix="ccl-standby-"))
    os.chmod(base, 0o755)
    standby = LocalCluster(base / "pg", free_port())
    testcase.addCleanup(lambda: (standby.destroy(), base.rmdir() if base.exists() else None))
    make_standby(standby, StandbySource("127.0.0.1", primary.port, PASSWORD), fast=True)
    if synchronous:
        set_synchronous(primary, "ccl_standby")
    dsn = multi_host_dsn([("127.0.0.1", primary.port), ("127.0.0.1", standby.port)], user="postgres", dbname="postgres")
    return primary, standby, dsn


def scalar(dsn: str, statement: str, params: tuple = ()):
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def streaming(primary: LocalCluster):
    """Fires once the primary sees its standby streaming."""
    return wait_for(lambda: scalar(primary.superuser_dsn(), "SELECT count(*) FROM pg_stat_replication"
                                   " WHERE state = 'streaming'") == 1, what="the standby streaming", timeout=60)
