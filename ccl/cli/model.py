"""ccl model add NAME VERSION [--description TEXT] | list: the AI models boxes name as model_id.

``add`` registers a model (not deployed; mark the deployed one on the AI 모델 page) through the
same use case as the UI's form, audited as ``model.register`` with the OS user as the actor
(``cli:<user>``, as ``ccl create-user``). ``list`` shows every model with its id.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys

CONNECT_TIMEOUT_S = 10


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="libpq connection string (default: the configured database)")
    parser.add_argument("--wait", type=float, default=CONNECT_TIMEOUT_S, metavar="SECONDS",
                        help=f"give up when the database is not reachable within this (default {CONNECT_TIMEOUT_S})")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a model (its id is what a box sends as model_id)")
    add.add_argument("name", help="model name (A-Z a-z 0-9 . _ + -), e.g. yolo-ccl")
    add.add_argument("version", help="version (A-Z a-z 0-9 . _ + -), e.g. v8 or 2026.12.1")
    add.add_argument("--description", default="", help="what it is (at most 500 characters)")
    actions.add_parser("list", help="show every model with its id")


def actor_name() -> str:
    """Who acts from the command line: the OS user (as ccl create-user records it)."""
    return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def run(args: argparse.Namespace) -> int:
    from ccl.adapters.storage.localdb import resolve_dsn
    from ccl.cli.database import with_database
    from ccl.config import load_config
    from ccl.domain.ai_models import ModelError, check_registration

    if args.action == "add":
        try:
            check_registration(args.name, args.version, args.description)
        except ModelError as error:
            sys.stderr.write(f"ccl model add: {error}\n")
            return 2
    dsn = args.dsn or resolve_dsn(load_config())
    return with_database("ccl model", dsn, args.wait, lambda db: _act(db, args))


async def _act(db, args) -> int:
    from ccl.adapters.storage.audit_log import AuditLog
    from ccl.adapters.storage.ui_queries.reads import ModelRegistry
    from ccl.application.ai_models import ModelExists, ModelRegistration
    from ccl.ports import Actor

    registration = ModelRegistration(ModelRegistry(db), AuditLog(db))
    if args.action == "list":
        found = await registration.models()
        if not found:
            print("no models registered (ccl model add NAME VERSION)")
        for m in found:
            print(f"{m['id']:>5}  {m['name']} {m['version']}{'  [deployed]' if m['deployed'] else ''}"
                  f"{'  - ' + m['description'] if m['description'] else ''}")
        return 0
    try:
        model_id = await registration.register(args.name, args.version, args.description, Actor(actor_name()))
    except ModelExists as exists:
        sys.stderr.write(f"ccl model add: {args.name} {args.version} is registered already (id {exists.args[0]});"
                         " nothing changed\n")
        return 1
    print(f"registered {args.name} {args.version} as model id {model_id} (boxes send model_id={model_id})")
    return 0
