"""``ccl``: the command line of the plant server.

Each sub-command lives in its own module of this package with ``configure(parser)`` and
``run(args) -> int``; this table is the only place that lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("ccl.cli.migrate", "apply the SQL migrations in schema/ to the database"),
    "localdb": ("ccl.cli.localdb", "create, start and stop the local PostgreSQL cluster"),
    "decode": ("ccl.cli.decode", "print the fields of a telegram given as hex or a file"),
    "create-user": ("ccl.cli.create_user", "create a UI user (password from stdin or a prompt)"),
    "backup": ("ccl.cli.backup", "backup and point-in-time restore of the database (pgBackRest) and the image store"),
    "standby": ("ccl.cli.standby", "a hot standby of the database on the second plant server: allow, setup, promote, status"),
    "ctl": ("ccl.cli.ctl", "status, start/stop/restart, logs of the services via the orchestrator"),
    "ingest-token": ("ccl.cli.ingest_token", "create, list or revoke bearer tokens of the Jetson boxes"),
    "tracking": ("ccl.cli.tracking", "coil tracking: rebuild a period from the stored telegrams and report what moved"),
    "retention": ("ccl.cli.retention", "drop the expired months of process data (after summarising their coils); --dry-run lists them"),
    "model": ("ccl.cli.model", "register an AI model (its id is the boxes' model_id) or list the models"),
    "tls": ("ccl.cli.tls", "make a private CA and server certificates for a site, print the TLS settings"),
    "report": ("ccl.cli.report", "a coil's report as a PDF (or its defects as CSV)"),
    "simulate": ("ccl.cli.simulate", "play a partner (mes: the Dongkuk MES; gokiwon: the 고기원 server; line: MES and Jetson boxes together)"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Only the selected command's module is imported, so one command's imports never slow or break another."""
    parser = argparse.ArgumentParser(prog="ccl", description="CCL surface-inspection plant server")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(_module=module_name)
        if name == selected:
            importlib.import_module(module_name).configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ccl.config import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args)
    except ConfigError as error:
        sys.stderr.write(f"ccl {args.command}: configuration error: {error}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
