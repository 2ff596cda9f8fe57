"""ccl create-user NAME --role ROLE: add a UI user.

The password is read from standard input when it is not a terminal (one line), asked for
twice at a terminal, or generated and printed once with --generate-password. It is stored
only as an Argon2id hash. The action lands in audit_logs.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pwd
import sys

import psycopg2

from ccl.adapters.storage.accounts import create_account
from ccl.adapters.storage.localdb import resolve_dsn
from ccl.config import load_config
from ccl.domain.accounts import (
    ROLES,
    AccountError,
    check_password,
    check_role,
    check_username,
    generate_password,
    hash_password,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="user id (A-Z a-z 0-9 . _ -)")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--display-name", default="", help="name shown in the UI (Korean welcome)")
    parser.add_argument("--generate-password", action="store_true", help="make a random password and print it once")
    parser.add_argument("--dsn", help="libpq connection string (default: the configured database)")


def _read_password(args: argparse.Namespace) -> str:
    if args.generate_password:
        return generate_password()
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    try:
        name = check_username(args.name)
        role = check_role(args.role)
        password = check_password(_read_password(args))
    except AccountError as error:
        sys.stderr.write(f"ccl create-user: {error}\n")
        return 2
    dsn = args.dsn or resolve_dsn(load_config())
    actor = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    try:
        connection = psycopg2.connect(dsn)
        try:
            created = create_account(connection, name, args.display_name, hash_password(password), role, actor=actor)
        finally:
            connection.close()
    except psycopg2.Error as error:
        sys.stderr.write(f"ccl create-user: database error: {str(error).strip()}\n")
        return 1
    if not created:
        sys.stderr.write(f"ccl create-user: user {name!r} already exists; nothing changed\n")
        return 1
    print(f"created user {name} with role {role}")
    if args.generate_password:
        print(f"password (shown once, store it safely): {password}")
    return 0
