"""Create the migrated template database ``ccl_template`` that every test database copies.

Run once by scripts/run-tests.sh after it starts the throw-away cluster.
"""

import os

import psycopg2

from ccl.adapters.storage.migrations import migrate

TEMPLATE = "ccl_template"


def main() -> None:
    admin = os.environ["CCL_TEST_PG_DSN"]
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        cursor.execute(f"CREATE DATABASE {TEMPLATE}")
    connection.close()
    migrate(admin.replace("dbname=postgres", f"dbname={TEMPLATE}"))


if __name__ == "__main__":
    main()
