"""ccl standby: a hot standby of the local database on the second plant server.

    on the primary:  ccl standby allow --network CIDR [--password-file F]
                     ccl standby synchronous NAME | --off
    on the standby:  ccl standby setup --primary HOST[:PORT] [--password-file F]
                     ccl standby promote
    on either:       ccl standby status

PostgreSQL streaming replication does the work (pg_basebackup -R, a replication slot,
pg_ctl promote). The replication password comes from --password-file or [standby] password_file
(CCL_STANDBY_PASSWORD_FILE); there is no default. The runbook is docs/operations.md#hot-standby-and-two-plant-servers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

import psycopg2

from ccl.adapters.storage.audit_log import append_now
from ccl.adapters.storage.localdb import LocalDatabaseError, local_cluster, local_server_dsn, resolve_dsn
from ccl.adapters.storage.standby import (
    REPLICATION_USER, SLOT, StandbySource, allow_standby, make_standby, parse_host_port, promote, read_password,
    replication_status, set_synchronous,
)
from ccl.config import ConfigError, load_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["allow", "synchronous", "setup", "promote", "status"])
    parser.add_argument("name", nargs="?", help="synchronous: the standby's name (default ccl_standby)")
    parser.add_argument("--primary", metavar="HOST[:PORT]", help="setup: the primary to copy and stream from")
    parser.add_argument("--password-file", type=Path,
                        help="allow, setup: the file holding the replication password (else [standby] password_file)")
    parser.add_argument("--network", help="allow: the address range of the other plant server, e.g. 10.1.2.0/24")
    parser.add_argument("--off", action="store_true", help="synchronous: back to asynchronous replication")
    parser.add_argument("--slot", default=SLOT, help=f"setup: the replication slot to create (default {SLOT})")
    parser.add_argument("--standby-name", default="ccl_standby",
                        help="setup: this standby's name on the primary (default ccl_standby)")


def _audit(config, action: str, details: dict) -> None:
    try:
        append_now(resolve_dsn(config), f"cli:{getpass.getuser()}", action, "database", "ok", details)
    except (psycopg2.Error, ConfigError) as error:
        print(f"warning: the audit row for {action} could not be written: {error}".strip())


def _local_dsn(config) -> str:
    try:
        return local_server_dsn(config)
    except ConfigError:  # no ccl database DSN here (yet): the superuser's, as on a test cluster
        return local_cluster(config).superuser_dsn()


def _password_file(args: argparse.Namespace, config) -> Path | None:
    if args.password_file is not None:
        return args.password_file
    return config.get_path("standby", "password_file") if config.get("standby", "password_file") else None


def run(args: argparse.Namespace) -> int:
    config = load_config()
    cluster = local_cluster(config)
    try:
        if args.action == "allow":
            if not args.network:
                raise LocalDatabaseError("allow needs --network CIDR: the address range of the other plant server")
            for change in allow_standby(cluster, read_password(_password_file(args, config)), network=args.network) or ["nothing to change"]:
                print(change)
            if cluster.listen == "127.0.0.1":
                print("note: [database] local_listen is 127.0.0.1: add this machine's plant-network address and"
                      " restart the database, or the standby cannot connect")
            _audit(config, "standby.allow", {"network": args.network})
        elif args.action == "synchronous":
            name = None if args.off else (args.name or "ccl_standby")
            set_synchronous(cluster, name)
            print("replication is asynchronous" if name is None else f"a commit now waits for the standby {name}")
            _audit(config, "standby.synchronous", {"standby": name})
        elif args.action == "setup":
            if not args.primary:
                raise LocalDatabaseError("setup needs --primary HOST[:PORT]")
            host, port = parse_host_port(args.primary)
            source = StandbySource(host, port, read_password(_password_file(args, config)), user=REPLICATION_USER,
                                   slot=args.slot, name=args.standby_name)
            make_standby(cluster, source)
            print(f"standby of {host}:{port} running in {cluster.datadir} (port {cluster.port}), slot {args.slot}")
            print(f"next, on the primary: `ccl standby synchronous {args.standby_name}`; on both machines the"
                  " multi-host [database] dsn (docs/operations.md#hot-standby-and-two-plant-servers)")
        elif args.action == "promote":
            promote(cluster)
            print(f"{cluster.datadir} is the primary now; the services reconnect to it by themselves")
            _audit(config, "standby.promote", {"datadir": str(cluster.datadir)})
        elif args.action == "status":
            status = replication_status(_local_dsn(config))
            print(f"role: {status.role}")
            if status.role == "standby":
                seconds = "-" if status.lag_seconds is None else f"{status.lag_seconds:.1f} s"
                print(f"receiver: {status.receiver}; replay lag: {seconds} since the last replayed commit,"
                      f" {status.lag_bytes or 0} bytes received and not replayed")
            else:
                for name, address, state, sync_state, behind in status.standbys:
                    print(f"standby {name} at {address}: {state} ({sync_state}), {behind} bytes behind")
                if not status.standbys:
                    print("no standby connected")
    except LocalDatabaseError as error:
        sys.stderr.write(f"ccl standby {args.action}: {error}\n")
        return 1
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl standby {args.action}: database: {str(error).strip()}\n")
        return 1
    return 0
