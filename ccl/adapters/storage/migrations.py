"""Numbered SQL migrations from schema/, applied in order, each in its own transaction.

Runs before the services start (``ccl migrate``), so it uses plain psycopg2, not the reactor.
An advisory lock makes two concurrent runs safe; applied versions are skipped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import attrs
import psycopg2

_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_304_9304  # any constant shared by all runs


@attrs.frozen
class Migration:
    version: int
    name: str
    path: Path


def schema_dir() -> Path:
    """The project's schema/ in a checkout, else the copy installed under share/ccl/schema."""
    checkout = Path(__file__).resolve().parents[3] / "schema"
    if checkout.is_dir():
        return checkout
    installed = Path(sys.prefix) / "share" / "ccl" / "schema"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"no schema directory at {checkout} or {installed}")


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or schema_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations numbered {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


def migrate(dsn: str, directory: Path | None = None, *, below: int | None = None) -> list[Migration]:
    """Apply every migration not yet recorded (``below``: only those numbered lower, to build
    the schema an upgrade starts from); return the ones applied now."""
    migrations = [m for m in discover(directory) if below is None or m.version < below]
    applied_now = []
    connection = psycopg2.connect(dsn)
    try:
        with connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
                cursor.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                cursor.execute("SELECT version FROM schema_migrations")
                done = {row[0] for row in cursor.fetchall()}
        for migration in migrations:
            if migration.version in done:
                continue
            sql = migration.path.read_text(encoding="utf-8")
            with connection:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    cursor.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
            applied_now.append(migration)
        with connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        connection.close()
    return applied_now
