"""ccl simulate PARTNER: play a partner system for commissioning and tests.

Each partner is a module of this package with ``configure(parser)`` and ``run(args) -> int``;
add one line to SIMULATORS to add a partner (e.g. ``gokiwon``).
"""

from __future__ import annotations

import argparse
import importlib

SIMULATORS: dict[str, tuple[str, str]] = {
    "mes": ("ccl.cli.simulate_mes", "the Dongkuk MES: a production run of TC 4000-4003 to our MES listener"),
    "gokiwon": ("ccl.cli.simulate_gokiwon", "the 고기원 server: takes forwarded telegrams, ACKs them to our 9306"),
    "line": ("ccl.cli.simulate_line", "the whole line: MES telegrams and the Jetson boxes' images, defects and"
                                      " heartbeats of one run, with the true metre of every defect (--truth)"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    partners = parser.add_subparsers(dest="partner", metavar="PARTNER", required=True)
    for name, (module_name, summary) in SIMULATORS.items():
        sub = partners.add_parser(name, help=summary, description=summary)
        sub.set_defaults(_simulator=module_name)
        importlib.import_module(module_name).configure(sub)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(args._simulator).run(args)
