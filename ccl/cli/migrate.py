"""ccl migrate: bring the database schema up to date (safe to run again)."""

from __future__ import annotations

import argparse
import sys

import psycopg2

from ccl.adapters.storage.localdb import resolve_dsn
from ccl.adapters.storage.migrations import migrate
from ccl.config import load_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="libpq connection string (default: CCL_DATABASE_DSN or the local database)")


def run(args: argparse.Namespace) -> int:
    dsn = args.dsn or resolve_dsn(load_config())
    try:
        applied = migrate(dsn)
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl migrate: database error: {str(error).strip()}\n")
        return 1
    for migration in applied:
        print(f"applied {migration.version:03d} {migration.name}")
    print(f"schema up to date ({len(applied)} applied now)")
    return 0
