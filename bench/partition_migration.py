"""Benchmark of schemas 117 and 123 on an existing database: how long the in-place conversion of
the MES process tables and of the defects to monthly partitions takes (the downtime of those
upgrades).

Starts a throw-away PostgreSQL cluster (fsync on), migrates it to the schema before 117, fills
``tc_4003_speed`` with ``--days`` of speed samples (one every 3 s: 28,800 a day, sent over the
months they span), tc_4001/4002 and rejected_telegrams with a few thousand rows, and
``defect_detections`` with ``--defects-per-day`` defects a day (half with an event id, each with
its tracking row), then times ``ccl migrate`` applying 117 .. 122 and then 123 alone, and checks
every row is still there.

Run: .venv/bin/python bench/partition_migration.py [--days 365] [--defects-per-day 50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402

TABLES = ("tc_4001_cut", "tc_4002_wpd", "tc_4003_speed", "rejected_telegrams", "defect_detections",
          "tracking_defects")


def counts(dsn: str) -> dict[str, int]:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        found = {}
        for table in TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}")
            found[table] = cursor.fetchone()[0]
        return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365, help="days of speed samples (28,800 a day)")
    parser.add_argument("--defects-per-day", type=int, default=50_000, help="defects a day")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccl-bench-partitions-"))
    os.chmod(work, 0o755)  # the cluster may run as another user (localdb)
    cluster = LocalCluster(work / "pg", free_port())
    cluster.init(trust=True)
    cluster.start()
    try:
        dsn = cluster.superuser_dsn("postgres")
        migrate(dsn, below=117)
        started = time.monotonic()
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                " SELECT 'CCL1', n %% 100000, t, t + interval '40 ms', 120, decode(lpad(n::text, 80, '0'), 'escape')"
                " FROM generate_series(1, %s) AS n,"
                " LATERAL (SELECT timestamptz '2025-01-01 00:00Z' + n * interval '3 s' AS t) AS at",
                (args.days * 28_800,))
            for table in ("tc_4001_cut", "tc_4002_wpd"):
                cursor.execute(
                    f"INSERT INTO {table} (line_code, sequence_no, sent_at, received_at, coil_number, raw)"
                    " SELECT 'CCL1', n, t, t, 'C' || n, 'x' FROM generate_series(1, %s) AS n,"
                    " LATERAL (SELECT timestamptz '2025-01-01 00:00Z' + n * interval '30 min' AS t) AS at",
                    (args.days * 48,))
            cursor.execute(
                "INSERT INTO rejected_telegrams (received_at, result_code, reason, raw)"
                " SELECT timestamptz '2025-01-01 00:00Z' + n * interval '1 h', '12', 'bench', 'x'"
                " FROM generate_series(1, %s) AS n", (args.days * 24,))
            cursor.execute(
                "INSERT INTO defect_detections (event_id, coil_number, defect_type, confidence_score, severity,"
                " defect_position_x, defect_position_meter, detection_time, received_at, camera_id)"
                " SELECT CASE WHEN n %% 2 = 0 THEN gen_random_uuid() END, 'C' || (n / 400),"
                " (ARRAY['scratch', 'dent', 'stain', 'pinhole'])[1 + n %% 4], 0.5 + (n %% 50) / 100.0, 'medium',"
                " n %% 1800, (n %% 400) * 3.0, t, t + interval '1 s', (ARRAY['top', 'bottom'])[1 + n %% 2]"
                " FROM generate_series(1, %s) AS n,"
                " LATERAL (SELECT timestamptz '2025-01-01 00:00Z' + n * interval '86400 s' / %s AS t) AS at",
                (args.days * args.defects_per_day, args.defects_per_day))
            cursor.execute(
                "INSERT INTO tracking_defects (defect_id, camera_id, detected_at, time_source, status, box_coil,"
                " model_version, computed_at) SELECT id, camera_id, detection_time, 'box', 'no_coil', coil_number,"
                " 1, received_at FROM defect_detections")
        connection = psycopg2.connect(dsn)
        connection.autocommit = True
        connection.cursor().execute("VACUUM ANALYZE")
        connection.cursor().execute("CHECKPOINT")
        connection.close()
        filled = counts(dsn)
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('tc_4003_speed'), pg_total_relation_size('defect_detections')")
            speed_size, defect_size = cursor.fetchone()
        print(f"filled in {time.monotonic() - started:.1f} s: {filled}; tc_4003_speed {speed_size / 2**20:.0f} MiB,"
              f" defect_detections {defect_size / 2**20:.0f} MiB")
        started = time.monotonic()
        applied = migrate(dsn, below=123)
        took = time.monotonic() - started
        print(f"migrations {[m.version for m in applied]} applied in {took:.1f} s"
              f" ({filled['tc_4003_speed'] / took / 1e6:.2f} million speed rows/s)")
        started = time.monotonic()
        applied = migrate(dsn)
        took = time.monotonic() - started
        print(f"migrations {[m.version for m in applied]} applied in {took:.1f} s"
              f" ({filled['defect_detections'] / took / 1e6:.2f} million defects/s)")
        after = counts(dsn)
        print(f"rows kept: {after == filled}")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
