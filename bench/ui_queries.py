"""p95 of every UI page's queries on 50,000 coils and 1,000,000 defects.

    CCL_VENV=/work/venv-x; $CCL_VENV/bin/python bench/ui_queries.py [--coils N --defects N --rounds N]

Starts a throw-away PostgreSQL cluster (removed afterwards), migrates and seeds it
(bench/ui_seed.py), then measures:

1. the query layer (ccl/adapters/storage/ui_queries) called directly, ``--rounds`` times each;
2. with ``--http``: every page and JSON endpoint over real HTTP against a real ``ccl-ui``
   subprocess, logged in as an admin, and the live-update latency (NOTIFY -> SSE event at a
   client).

Prints one line per measurement: name, p50, p95, max in milliseconds. Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402


#: Each case runs ``--rounds`` times, or fewer (at least MIN_ROUNDS) when it has taken CASE_SECONDS.
CASE_SECONDS = 15.0
MIN_ROUNDS = 5


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def line(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"{name:<40} p50 {statistics.median(ms):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms"
            f"   max {max(ms):7.1f} ms   (n={len(ms)})")


def query_cases(db):
    """(name, zero-argument callable returning a Deferred) for every page's queries."""
    from ccl.adapters.storage.ui_queries import coil, dashboard, history, models, stats

    # the benchmark measures at the present (bench/ui_seed.py seeds up to it), in plant time
    now = datetime.datetime.now(ZoneInfo("Asia/Seoul"))
    today = now.date()
    coils = [f"C{26000000 + n}" for n in (49_999, 45_000, 30_000, 10_000, 123)]
    picks = iter(range(10**9))

    def pick():
        return coils[next(picks) % len(coils)]

    def search(**args):
        return lambda: history.search(db, history.Search.from_args(args, today))

    return [
        ("dashboard (all at first paint)", lambda: dashboard.dashboard(db, now)),
        ("dashboard: current coil", lambda: dashboard.current_coil(db)),
        ("dashboard: line speed 30 min", lambda: dashboard.line_speed(db, now)),
        ("dashboard: latest image pair", lambda: dashboard.latest_image_pair(db)),
        ("dashboard: recent defects", lambda: dashboard.recent_defects(db)),
        ("dashboard: today's counts", lambda: dashboard.today_counts(db, now)),
        ("history: default (30 days)", search()),
        ("history: page 20 sorted by customer", search(sort="customer_name", order="asc", page="20")),
        ("history: partial coil number", search(coil="2604", **{"from": str(today - datetime.timedelta(days=600))})),
        ("history: customer + 1 year", search(customer="포스코", **{"from": str(today - datetime.timedelta(days=365))})),
        ("history: defect type (rare) 30 days", search(defect_type="edge_crack")),
        ("history: defect type absent 1 year", search(defect_type="nonexistent",
                                                       **{"from": str(today - datetime.timedelta(days=365))})),
        ("coil detail", lambda: coil.coil_detail(db, pick(), now)),
        ("image defects (viewer)", lambda: coil.image_defects(db, 1001)),
        ("statistics: 7 days", lambda: stats.statistics(db, today - datetime.timedelta(days=6), today)),
        ("statistics: 30 days", lambda: stats.statistics(db, today - datetime.timedelta(days=29), today)),
        ("statistics: 365 days", lambda: stats.statistics(db, today - datetime.timedelta(days=364), today)),
        ("AI models + metrics history", lambda: models.models_page(db)),
    ]


def measure_queries(reactor, dsn: str, rounds: int):
    """Deferred: time each query case ``rounds`` times and print its line."""
    from twisted.internet import defer

    from ccl.adapters.storage.postgres import Database

    @defer.inlineCallbacks
    def run():
        db = Database(reactor, dsn, size=4)
        yield db.start()
        for name, case in query_cases(db):
            yield case()  # warm-up
            samples, budget = [], time.monotonic() + CASE_SECONDS
            while len(samples) < rounds and (len(samples) < MIN_ROUNDS or time.monotonic() < budget):
                began = time.perf_counter()
                yield case()
                samples.append(time.perf_counter() - began)
            print(line(name, samples), flush=True)
        db.close()

    return run()


def sum_rollup(reactor, dsn: str):
    """Deferred: sum every closed day into the statistics' roll-up, as ccl-ui's refresh job
    does in the background (a fresh seed is one big "late" history), and print how long it took."""
    from twisted.internet import defer

    from ccl.adapters.storage.postgres import Database
    from ccl.adapters.storage.ui_queries import rollup

    @defer.inlineCallbacks
    def run():
        db = Database(reactor, dsn, size=1)
        yield db.start()
        began = time.perf_counter()
        days = yield rollup.refresh_all(db, datetime.datetime.now(datetime.timezone.utc))
        print(f"roll-up: summed {len(days)} days in {time.perf_counter() - began:.1f} s", flush=True)
        db.close()

    return run()


def run_measurements(dsn: str, base: Path, args) -> None:
    """Everything that needs the reactor, in one reactor run (it cannot be restarted)."""
    from twisted.internet import defer, task, threads

    @defer.inlineCallbacks
    def main(reactor):
        yield sum_rollup(reactor, dsn)
        print("-- query layer (direct)")
        yield measure_queries(reactor, dsn, args.rounds)
        if args.http:
            import ui_http

            print("-- over HTTP against ccl-ui")
            yield threads.deferToThread(ui_http.measure, dsn, base, args.rounds)

    try:
        task.react(main)
    except SystemExit as done:
        if done.code:
            raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coils", type=int, default=50_000)
    parser.add_argument("--defects", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--http", action="store_true", help="also measure pages over HTTP against ccl-ui")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running (prints its DSN)")
    parser.add_argument("--dsn", help="measure an already seeded database instead (no cluster, no seeding)")
    args = parser.parse_args()

    from ui_seed import seed

    if args.dsn:
        migrate(args.dsn)
        run_measurements(args.dsn, Path(tempfile.mkdtemp(prefix="ccl-bench-ui-")), args)
        return 0
    base = Path(tempfile.mkdtemp(prefix="ccl-bench-ui-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    try:
        cluster.init(trust=True)
        cluster.start(fast=True)
        dsn = cluster.superuser_dsn("postgres")
        migrate(dsn)
        seed(dsn, coils=args.coils, defects=args.defects)
        run_measurements(dsn, base, args)
        if args.keep:
            print(f"cluster kept: {dsn}  (datadir {base / 'pg'})")
            return 0
    finally:
        if not args.keep:
            cluster.destroy()
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
