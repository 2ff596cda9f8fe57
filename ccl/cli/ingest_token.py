"""ccl ingest-token create NAME | list | revoke NAME: bearer tokens of the Jetson boxes.

The token is printed once at creation; only its SHA-256 digest is stored. Every change is
recorded in audit_logs.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys

import psycopg2

from ccl.adapters.storage.localdb import resolve_dsn
from ccl.config import load_config
from ccl.domain.ingest.tokens import check_token_name, new_token, token_digest


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="libpq connection string (default: the configured database)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it once")
    create.add_argument("name", help="whose token, e.g. jetson-top (A-Z a-z 0-9 . _ -)")
    actions.add_parser("list", help="show the tokens (names and dates, never the tokens)")
    revoke = actions.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("name")


def _audit(cursor, action: str, target: str, result: str, details: dict | None = None) -> None:
    actor = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    cursor.execute("INSERT INTO audit_logs (actor, action, target, result, details) VALUES (%s, %s, %s, %s, %s)",
                   (actor, action, target, result, json.dumps(details or {})))


def run(args: argparse.Namespace) -> int:
    dsn = args.dsn or resolve_dsn(load_config())
    try:
        if args.action != "list":
            check_token_name(args.name)
    except ValueError as error:
        sys.stderr.write(f"ccl ingest-token: {error}\n")
        return 2
    try:
        connection = psycopg2.connect(dsn)
        try:
            with connection, connection.cursor() as cursor:
                return {"create": _create, "list": _list, "revoke": _revoke}[args.action](cursor, args)
        finally:
            connection.close()
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl ingest-token: database error: {str(error).strip()}\n")
        return 1


def _create(cursor, args) -> int:
    token = new_token()
    cursor.execute("INSERT INTO ingest_tokens (name, token_hash) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
                   " RETURNING id", (args.name, token_digest(token)))
    created = cursor.fetchone() is not None
    _audit(cursor, "ingest_token.create", args.name, "ok" if created else "exists")
    if not created:
        sys.stderr.write(f"ccl ingest-token: a token named {args.name!r} exists; revoke it or choose another name\n")
        return 1
    print(f"token for {args.name} (shown once, store it on the Jetson box):")
    print(token)
    return 0


def _list(cursor, args) -> int:
    cursor.execute("SELECT name, created_at, last_used_at, revoked_at FROM ingest_tokens ORDER BY name")
    rows = cursor.fetchall()
    if not rows:
        print("no ingest tokens")
        return 0
    print(f"{'name':<24} {'created':<20} {'last used':<20} state")
    for name, created, used, revoked in rows:
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        print(f"{name:<24} {created:%Y-%m-%d %H:%M:%S}  {used and f'{used:%Y-%m-%d %H:%M:%S}' or '-':<20} {state}")
    return 0


def _revoke(cursor, args) -> int:
    cursor.execute("UPDATE ingest_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL RETURNING id",
                   (args.name,))
    done = cursor.fetchone() is not None
    _audit(cursor, "ingest_token.revoke", args.name, "ok" if done else "not_found")
    if not done:
        sys.stderr.write(f"ccl ingest-token: no active token named {args.name!r}\n")
        return 1
    print(f"revoked the token of {args.name} (services refuse it within 10 seconds)")
    return 0
