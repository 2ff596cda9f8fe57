"""ccl report COIL [--out FILE] [--csv]: a coil's report as a PDF (or its defects as CSV).

The same use case and drawing as the UI's ``/coils/{coil}/report.pdf`` and
``/coils/{coil}/defects.csv``: settings ``[report]`` (the Korean fonts) and ``[images] root``
(the worst defects' images). The file is written whole or not at all (a temporary file renamed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

CONNECT_TIMEOUT_S = 10


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("coil", help="coil number (1-20 of A-Z a-z 0-9 -)")
    parser.add_argument("--out", help="file to write (default: coil_<COIL>_report.pdf or coil_<COIL>_defects.csv here)")
    parser.add_argument("--csv", action="store_true", help="the coil's defects as CSV (UTF-8 with BOM) instead of the PDF")
    parser.add_argument("--dsn", help="libpq connection string (default: the configured database)")
    parser.add_argument("--wait", type=float, default=CONNECT_TIMEOUT_S, metavar="SECONDS",
                        help=f"give up when the database is not reachable within this (default {CONNECT_TIMEOUT_S})")


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, renamed at the end."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def run(args: argparse.Namespace) -> int:
    from ccl.adapters.storage.localdb import resolve_dsn
    from ccl.cli.database import with_database
    from ccl.config import load_config
    from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number

    try:
        check_coil_number(args.coil)
    except InvalidCoilNumber as error:
        sys.stderr.write(f"ccl report: {error}\n")
        return 2
    out = Path(args.out or (f"coil_{args.coil}_defects.csv" if args.csv else f"coil_{args.coil}_report.pdf"))
    if not out.parent.is_dir():
        sys.stderr.write(f"ccl report: no folder {out.parent} to write {out.name} into\n")
        return 2
    from ccl.adapters.reports.pdf import PdfRenderer
    from ccl.adapters.reports.settings import ReportSettings

    config = load_config()
    dsn = args.dsn or resolve_dsn(config)
    renderer = PdfRenderer(ReportSettings.from_config(config), config.get_path("images", "root"))
    return with_database("ccl report", dsn, args.wait, lambda db: _write(db, renderer, args, out))


async def _write(db, renderer, args, out: Path) -> int:
    from twisted.internet import reactor

    from ccl.adapters.storage.coil_report import CoilReportReads
    from ccl.application.reports import CoilReports, NoSuchCoil

    reports = CoilReports(CoilReportReads(db), renderer, reactor)
    try:
        data = await (reports.csv(args.coil) if args.csv else reports.pdf(args.coil))
    except NoSuchCoil:
        sys.stderr.write(f"ccl report: coil {args.coil} is not known (no schedule, tracking or defect stored)\n")
        return 1
    write_whole(out, data)
    print(f"wrote {out} ({len(data):,} bytes)")
    return 0
