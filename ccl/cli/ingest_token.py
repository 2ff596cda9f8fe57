"""ccl ingest-token create NAME | list | revoke NAME: bearer tokens of the Jetson boxes.

The token is printed once at creation; only its SHA-256 digest is stored. Every change is
recorded in audit_logs.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys

import psycopg2

from ccl.adapters.storage.ingest_tokens import create_token, list_tokens, revoke_token
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


def _actor() -> str:
    return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


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
            return {"create": _create, "list": _list, "revoke": _revoke}[args.action](connection, args)
        finally:
            connection.close()
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl ingest-token: database error: {str(error).strip()}\n")
        return 1


def _create(connection, args) -> int:
    token = new_token()
    if not create_token(connection, args.name, token_digest(token), actor=_actor()):
        sys.stderr.write(f"ccl ingest-token: a token named {args.name!r} exists; revoke it or choose another name\n")
        return 1
    print(f"token for {args.name} (shown once, store it on the Jetson box):")
    print(token)
    return 0


def _list(connection, args) -> int:
    tokens = list_tokens(connection)
    if not tokens:
        print("no ingest tokens")
        return 0
    print(f"{'name':<24} {'created':<20} {'last used':<20} state")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        used = t.last_used_at and f"{t.last_used_at:%Y-%m-%d %H:%M:%S}" or "-"
        print(f"{t.name:<24} {t.created_at:%Y-%m-%d %H:%M:%S}  {used:<20} {state}")
    return 0


def _revoke(connection, args) -> int:
    if not revoke_token(connection, args.name, actor=_actor()):
        sys.stderr.write(f"ccl ingest-token: no active token named {args.name!r}\n")
        return 1
    print(f"revoked the token of {args.name} (services refuse it within 10 seconds)")
    return 0
