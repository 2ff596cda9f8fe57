"""Backup and restore times of `ccl backup` for a generated plant database.

Usage: python bench/backup.py [--days 365] [--speeds-per-day 28800] [--defects-per-day 2000]
                              [--work DIR]

A throw-away local cluster (set up like `ccl localdb setup`, fsync on) in a temp dir under
--work, filled with --days of TC 4003 line-speed telegrams (a year is ~10.5 M rows: one every
3 s) and AI defects, generated inside PostgreSQL (INSERT ... SELECT generate_series, a month per
statement). Then, each through the real command line:
- `ccl backup setup --repo`, `ccl backup run --type full` (the first, full backup);
- one more day of data, `ccl backup run --type diff`;
- the data directory destroyed, `ccl backup restore --to T --repo` into an empty directory
  (a replaced disk and a lost pgBackRest configuration), up to the promoted, verified database.
Prints the database size, repository size and the wall time of each step. The backup path is on
the same disk as the cluster here (a plant puts it on a second disk); both are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

from ccl.adapters.storage.localdb import free_port, local_cluster, setup_local_database  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402
from ccl.config import load_config  # noqa: E402

SPEEDS_SQL = """
INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, peer, line_speed, raw)
SELECT 'CCL1', (n %% 1000000)::int, t, t + interval '20 ms', '10.0.0.5:40001', 80 + (n %% 41)::int,
       convert_to('4003CCL1' || lpad(n::text, 12, '0') || to_char(t, 'YYYYMMDDHH24MISS') || '00120    ', 'UTF8')
FROM (SELECT n, %(start)s::timestamptz + n * %(step)s * interval '1 s' AS t
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n) AS g
"""

DEFECTS_SQL = """
INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, defect_position_x,
    defect_position_y, defect_size_width, defect_size_height, defect_position_meter, detection_time,
    received_at, camera_id, batch_info)
SELECT 'C' || lpad((n / 60)::text, 8, '0'),
       (ARRAY['scratch','dent','stain','pinhole','coating_defect','edge_crack','roll_mark','other'])[1 + n %% 8],
       0.5 + (n %% 50) / 100.0, (ARRAY['low','medium','high','critical'])[1 + n %% 4],
       (n * 7) %% 1600, (n * 13) %% 1200, 4 + n %% 60, 3 + n %% 40, (n %% 3000) * 1.5, t, t + interval '1 s',
       CASE WHEN n %% 2 = 0 THEN 'top' ELSE 'bottom' END,
       jsonb_build_object('batch_id', 'b' || (n / 50)::text, 'model', 'yolo-v8-ccl', 'box', 'jetson-1')
FROM (SELECT n, %(start)s::timestamptz + n * %(step)s * interval '1 s' AS t
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n) AS g
"""


def generate(dsn: str, days: float, per_day: int, statement: str, label: str, offset_days: float = 0) -> int:
    step = 86400.0 / per_day
    total = int(days * per_day)
    first_n = int(offset_days * per_day)
    month = 30 * per_day
    connection = psycopg2.connect(dsn)
    try:
        for first in range(first_n, first_n + total, month):
            last = min(first + month, first_n + total) - 1
            with connection, connection.cursor() as cursor:
                cursor.execute(statement, {"start": "2025-12-01T00:00:00+09:00", "step": step,
                                           "first": first, "last": last})
            print(f"  {label}: {last + 1 - first_n:,} of {total:,}", flush=True)
    finally:
        connection.close()
    return total


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--speeds-per-day", type=int, default=28800)
    parser.add_argument("--defects-per-day", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ccl-bench-backup-", dir=args.work))
    os.chmod(base, 0o755)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
    environ.update(CCL_PATHS_VAR=str(base / "var"), CCL_PATHS_LOGS=str(base / "logs"),
                   CCL_IMAGES_ROOT=str(base / "images"), CCL_DATABASE_DSN="",
                   CCL_DATABASE_LOCAL_PORT=str(free_port()))
    config = load_config(environ)
    cluster = local_cluster(config)
    repo = base / "backup"

    def ccl(*argv: str) -> float:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "ccl", *argv], env=environ, cwd=ROOT,
                                capture_output=True, text=True)
        took = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"ccl {' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
        return took

    def one(sql: str):
        connection = psycopg2.connect(dsn)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone()[0]
        finally:
            connection.close()

    try:
        dsn = setup_local_database(config)
        migrate(dsn)
        print(f"generating {args.days:g} days: {args.speeds_per_day}/day speed telegrams,"
              f" {args.defects_per_day}/day defects", flush=True)
        started = time.monotonic()
        speeds = generate(dsn, args.days, args.speeds_per_day, SPEEDS_SQL, "tc_4003_speed")
        defects = generate(dsn, args.days, args.defects_per_day, DEFECTS_SQL, "defect_detections")
        generated = time.monotonic() - started
        size = one("SELECT pg_database_size('ccl')")
        cluster_size = du(cluster.datadir)

        setup = ccl("backup", "setup", "--repo", str(repo))
        full = ccl("backup", "run", "--type", "full", "--no-images")
        repo_after_full = du(repo / "pgbackrest")
        generate(dsn, 1, args.speeds_per_day, SPEEDS_SQL, "one more day of tc_4003_speed", offset_days=args.days)
        generate(dsn, 1, args.defects_per_day, DEFECTS_SQL, "one more day of defects", offset_days=args.days)
        diff = ccl("backup", "run", "--type", "diff", "--no-images")
        repo_after_diff = du(repo / "pgbackrest")

        expected = one("SELECT count(*) FROM tc_4003_speed")
        # A time can be restored from the whole second after the last backup's end on.
        time.sleep(1.1)
        target = one("SELECT clock_timestamp()")
        time.sleep(1.1)
        late = one("WITH i AS (INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                   " SELECT 'CCL1', n, now(), now(), 'after T'::bytea FROM generate_series(1, 100) AS n RETURNING 1)"
                   " SELECT count(*) FROM i")
        ccl("backup", "list")
        subprocess.run(cluster.owner_command(["pgbackrest", f"--config={base / 'var' / 'backup' / 'pgbackrest.conf'}",
                                              "--stanza=ccl", "check"]), check=True, capture_output=True)
        cluster.stop("immediate")
        shutil.rmtree(cluster.datadir)
        shutil.rmtree(base / "var" / "backup")
        restore = ccl("backup", "restore", "--to", target.isoformat(), "--repo", str(repo))
        restored = one("SELECT count(*) FROM tc_4003_speed")
        if restored != expected:
            raise SystemExit(f"restored {restored} rows, expected {expected} (without the {late} written after T)")

        mb = 1 << 20
        print()
        print(f"data: {args.days:g} days, {speeds:,} tc_4003_speed rows, {defects:,} defects"
              f" (generated in {generated:.0f} s)")
        print(f"database size {size / mb:,.0f} MB (data directory {cluster_size / mb:,.0f} MB)")
        print(f"ccl backup setup                     {setup:8.1f} s")
        print(f"ccl backup run --type full           {full:8.1f} s   repository {repo_after_full / mb:,.0f} MB")
        print(f"ccl backup run --type diff (+1 day)  {diff:8.1f} s   repository {repo_after_diff / mb:,.0f} MB")
        print(f"ccl backup restore --to T (empty dir){restore:8.1f} s   {restored:,} rows back, as at T")
        print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
