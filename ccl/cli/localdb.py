"""ccl localdb: the PostgreSQL cluster under [paths] var, used when [database] dsn is empty.

``setup`` creates it once (random passwords, stored with mode 600), starts it, creates the
``ccl`` database and migrates it. The test script uses ``--datadir/--port --trust`` for a
throw-away cluster.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ccl.adapters.storage.localdb import LocalCluster, LocalDatabaseError, local_cluster, setup_local_database
from ccl.adapters.storage.migrations import migrate
from ccl.config import load_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["setup", "init", "start", "stop", "status", "destroy", "server-command", "dsn"])
    parser.add_argument("--datadir", type=Path, help="cluster directory (default: [paths] var/pgdata)")
    parser.add_argument("--port", type=int, help="port (default: [database] local_port)")
    parser.add_argument("--trust", action="store_true", help="init: no passwords on loopback (throw-away test clusters only)")
    parser.add_argument("--fast", action="store_true", help="start: fsync off (throw-away test clusters only)")
    parser.add_argument("--database", default="ccl", help="dsn: database name to print a DSN for")


def _cluster(args: argparse.Namespace) -> LocalCluster:
    if args.datadir:
        if not args.port:
            raise SystemExit("ccl localdb: --datadir needs --port")
        return LocalCluster(args.datadir.absolute(), args.port)
    cluster = local_cluster(load_config())
    if args.port:
        cluster.port = args.port
    return cluster


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "setup":
            config = load_config()
            dsn = setup_local_database(config)
            for migration in migrate(dsn):
                print(f"applied {migration.version:03d} {migration.name}")
            print(f"local database ready on port {local_cluster(config).port}")
            return 0
        cluster = _cluster(args)
        if args.action == "init":
            cluster.init(trust=args.trust)
        elif args.action == "start":
            cluster.start(fast=args.fast)
        elif args.action == "stop":
            cluster.stop()
        elif args.action == "destroy":
            cluster.destroy()
        elif args.action == "status":
            running = cluster.is_running()
            print(f"{cluster.datadir}: {'running' if running else 'stopped'} (port {cluster.port})")
            return 0 if running else 3
        elif args.action == "server-command":
            print(shlex.join(cluster.server_argv()))
        elif args.action == "dsn":
            print(cluster.superuser_dsn(args.database))
    except LocalDatabaseError as error:
        sys.stderr.write(f"ccl localdb {args.action}: {error}\n")
        return 1
    return 0
