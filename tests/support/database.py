"""Per-test PostgreSQL databases, copied from the migrated template (fast, isolated).

Needs the throw-away cluster that scripts/run-tests.sh starts (CCL_TEST_PG_DSN).
"""

from __future__ import annotations

import itertools
import os

import psycopg2
from twisted.trial.unittest import SkipTest

from tests.support.template import TEMPLATE

_counter = itertools.count(1)


def admin_dsn() -> str:
    try:
        return os.environ["CCL_TEST_PG_DSN"]
    except KeyError:
        raise SkipTest("no test PostgreSQL: run the suite with scripts/run-tests.sh") from None


def _admin_execute(statement: str) -> None:
    connection = psycopg2.connect(admin_dsn())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def fresh_database(testcase) -> str:
    """Create an empty migrated database for ``testcase``, dropped again at clean-up; return its DSN."""
    name = f"t{os.getpid()}_{next(_counter)}"
    _admin_execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    testcase.addCleanup(_admin_execute, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return admin_dsn().replace("dbname=postgres", f"dbname={name}")


def query(dsn: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Synchronous read for assertions."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


class DatabaseTestCase:
    """Mixin for a trial TestCase with a fresh database, a txpostgres ``self.db`` and an
    autocommit psycopg2 ``self.connection`` for arranging data with ``self.sql``."""

    def start_database(self):
        from twisted.internet import reactor

        from ccl.adapters.storage.postgres import Database

        self.dsn = fresh_database(self)
        self.connection = psycopg2.connect(self.dsn)
        self.connection.autocommit = True
        self.addCleanup(self.connection.close)
        self.db = Database(reactor, self.dsn, size=2)
        self.addCleanup(self.db.close)
        return self.db.start()

    def sql(self, statement: str, params=()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
