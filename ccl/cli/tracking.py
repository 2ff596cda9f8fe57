"""ccl tracking rebuild --from T --to T: track a period again from what is stored, and say what moved.

Times are ISO 8601; without an offset they mean plant time (KST), e.g. 2026-03-01T06:00.
The placements, coil results and delay log of the period are written where they changed; the
report is kept in tracking_runs and the action in audit_logs. Safe to run while the services
run (the live tracker and a rebuild write the same results for the same data).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

CONNECT_TIMEOUT_S = 10


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = actions.add_parser("rebuild", help="recompute the tracking of a period and report what moved")
    rebuild.add_argument("--from", dest="since", required=True, help="start of the period (ISO 8601)")
    rebuild.add_argument("--to", dest="until", required=True, help="end of the period (ISO 8601, exclusive)")
    rebuild.add_argument("--json", action="store_true", help="print the report as JSON")
    rebuild.add_argument("--dsn", help="libpq connection string (default: from the configuration)")
    rebuild.add_argument("--wait", type=float, default=CONNECT_TIMEOUT_S, metavar="SECONDS",
                         help=f"give up when the database is not reachable within this (default {CONNECT_TIMEOUT_S})")


def _moment(text: str, name: str) -> float:
    from ccl.domain.ingest.times import parse_timestamp

    try:
        return parse_timestamp(text).timestamp()
    except ValueError as error:
        raise SystemExit(f"ccl tracking rebuild: --{name}: {error}") from None


def _print(report: dict) -> None:
    print(f"period {report['from']} .. {report['to']}: {report['placements']} placements,"
          f" {report['coils']} coils, {report['delays']} delay log entries ({report['telegrams']} telegrams read)")
    print(f"  new {report['new']}, moved to another coil {report['coil']}, to another metre {report['metre']},"
          f" other details {report['details']}, unchanged {report['unchanged']}; written {report['written']}")
    print(f"  box coil number disagrees: {report['disagreements']}; not placed on a coil: {report['untracked']}")
    for example in report["examples"]:
        before, after = example["from"] or {}, example["to"]
        print(f"  {example['kind']} {example['id']}: {before.get('tracked_coil')} {before.get('metre')} m"
              f" -> {after['tracked_coil']} {after['metre']} m")
    print(f"  took {report['seconds']:.2f} s")


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from twisted.internet import defer, task

    from ccl.adapters.storage.localdb import resolve_dsn
    from ccl.adapters.storage.postgres import Database, audit
    from ccl.adapters.storage.tracking_store import TrackingRecords
    from ccl.application.tracking import recompute
    from ccl.config import load_config
    from ccl.domain.tracking.settings import TrackingSettings

    since, until = _moment(args.since, "from"), _moment(args.until, "to")
    if until <= since:
        sys.stderr.write("ccl tracking rebuild: --to must be later than --from\n")
        return 2
    config = load_config()
    settings = TrackingSettings.from_config(config)
    dsn = args.dsn or resolve_dsn(config)
    outcome = {}

    @defer.inlineCallbacks
    def main(reactor):
        db = Database(reactor, dsn, size=2)
        try:
            # Database.start waits for a database that is down (right for a service); a command says so.
            yield db.start().addTimeout(args.wait, reactor)
        except defer.TimeoutError:
            db.close()
            sys.stderr.write(f"ccl tracking rebuild: the database is not reachable (waited {args.wait:g} s)\n")
            raise SystemExit(1) from None
        try:
            started = reactor.seconds()
            done = yield recompute(TrackingRecords.for_settings(db, settings), settings, since, until, reactor.seconds())
            report = {**done.report, "seconds": reactor.seconds() - started,
                      "from": datetime.fromtimestamp(since, timezone.utc).isoformat(),
                      "to": datetime.fromtimestamp(until, timezone.utc).isoformat()}
            yield TrackingRecords.for_settings(db, settings).record_run("rebuild", since, until, report)
            yield audit(db, actor=f"cli:{getpass.getuser()}", action="tracking.rebuild",
                        target=f"{report['from']}..{report['to']}", result="ok",
                        details={k: v for k, v in report.items() if k != "examples"})
            outcome["report"] = report
        finally:
            db.close()

    try:
        task.react(lambda reactor: main(reactor))
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            sys.stderr.write("ccl tracking rebuild: failed (see above)\n")
            return 1
    report = outcome["report"]
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        _print(report)
    return 0
