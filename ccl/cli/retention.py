"""ccl retention run [--dry-run]: drop the months of partitioned data older than [retention].

Before anything is dropped, every coil named in an expired month gets its summary in
coil_summaries (kept for ever); then each expired partition is detached and dropped, in one
transaction, audited (retention.run) and logged. --dry-run lists what would go and changes
nothing. Partitions for this month and the next [retention] partitions_ahead are created on
the way (also by the orchestrator), and rows found in a DEFAULT partition are reported.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

CONNECT_TIMEOUT_S = 10


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_ = actions.add_parser("run", help="summarise and drop the expired monthly partitions")
    run_.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    run_.add_argument("--json", action="store_true", help="print the report as JSON")
    run_.add_argument("--dsn", help="libpq connection string (default: from the configuration)")


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    import psycopg2

    from ccl.adapters.storage import partitions
    from ccl.adapters.storage.localdb import resolve_dsn
    from ccl.config import load_config
    from ccl.domain.retention_settings import RetentionSettings

    config = load_config()
    settings = RetentionSettings.from_config(config)
    dsn = args.dsn or resolve_dsn(config)
    now = datetime.now(timezone.utc)
    try:
        connection = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.OperationalError as error:
        sys.stderr.write(f"ccl retention run: the database is not reachable: {error}\n")
        return 1
    try:
        with connection:
            if not args.dry_run:
                partitions.ensure_partitions(connection, now.date(), settings.months_ahead)
            report = partitions.run_retention(connection, now.date(), settings.keep_months,
                                              actor=f"cli:{getpass.getuser()}", dry_run=args.dry_run, now=now)
            stray = partitions.default_rows(connection)
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl retention run: failed, nothing dropped: {error}\n")
        return 1
    finally:
        connection.close()
    if args.json:
        print(json.dumps(report.as_json() | {"default_partition_rows": stray}, indent=2))
        return 0
    verb = "would drop" if report.dry_run else "dropped"
    kept = ", ".join(f"{group} {months or 'for ever'} months" for group, months in settings.keep_months.items())
    print(f"keeping: {kept}")
    if not report.expired:
        print("nothing expired")
    for victim in report.expired:
        print(f"{verb} {victim.partition} ({victim.table}, {victim.month:%Y-%m})")
    if not report.dry_run:
        print(f"coil summaries written: {report.summarized}")
    for table, count in stray.items():
        print(f"warning: {count} rows in {table}_default (no partition for their month; see docs/operations.md)")
    return 0
