"""Benchmark of reaching defects from the tables that refer to them, before and after the
defects were partitioned by month (schema 123).

Starts a throw-away PostgreSQL cluster (fsync on) with two databases holding the same data:
``plain`` migrated up to 122 (one defect_detections table) and ``monthly`` migrated fully (41
monthly partitions). Each gets ``--defects`` defects spread over those months, every one with
its tracking row, and a coil of 1,000 defects received this month. Then the queries that go from
tracking rows to defects run against each: the quality watch's coil defects, the UI's coil
defects and the coil report's, in the form each schema's code uses (by id on ``plain``, by id
and received_at in a LATERAL look-up on ``monthly``), plus a plain join by id on ``monthly``
to show what the LATERAL form avoids, each with JIT off and on.

    .venv/bin/python bench/defect_keys.py [--defects 1500000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage import coil_report, quality_store  # noqa: E402
from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402
from ccl.adapters.storage.ui_queries import dashboard  # noqa: E402

MONTHS = 41
COIL = "BENCH1"

#: The same three queries as the code before schema 123 wrote them (by id alone).
BY_ID = {
    "quality watch: coil defects": (
        "SELECT t.defect_id, t.tracked_coil, c.coil_number, t.camera_id, coalesce(t.surface, t.camera_id), t.metre,"
        " t.in_weld_zone, d.defect_type, d.severity, d.defect_position_x, d.defect_size_width,"
        " d.defect_size_height, d.review_status FROM tracking_defects t JOIN defect_detections d ON d.id = t.defect_id"
        " JOIN tracking_coils c ON c.tracked_coil = t.tracked_coil WHERE t.status = 'placed' AND t.metre IS NOT NULL"
        " AND t.tracked_coil = %(c)s ORDER BY t.metre, t.defect_id"),
    "UI coil page: coil defects": (
        "WITH tracked AS (SELECT tracked_coil FROM tracking_coils WHERE coil_number = %(c)s"
        " ORDER BY head_wpd_at DESC LIMIT 1)"
        " SELECT d.*, t.metre, pm.series_id FROM defect_detections d LEFT JOIN images i ON i.id = d.original_image_id"
        " LEFT JOIN tracking_defects t ON t.defect_id = d.id LEFT JOIN periodic_members pm ON pm.defect_id = d.id"
        " WHERE d.id IN (SELECT id FROM defect_detections WHERE coil_number = %(c)s UNION ALL"
        " SELECT defect_id FROM tracking_defects WHERE tracked_coil = (SELECT tracked_coil FROM tracked))"
        " ORDER BY d.detection_time, d.id LIMIT 5000"),
    "coil report: defects": (
        "WITH ids AS (SELECT t.defect_id AS id FROM tracking_defects t WHERE t.tracked_coil = %(c)s)"
        " SELECT d.*, t.metre, pm.series_id FROM ids JOIN defect_detections d ON d.id = ids.id"
        " LEFT JOIN tracking_defects t ON t.defect_id = d.id LEFT JOIN periodic_members pm ON pm.defect_id = d.id"
        " LEFT JOIN images oi ON oi.id = d.original_image_id ORDER BY t.metre, d.id LIMIT 50000"),
}


def by_key() -> dict[str, tuple[str, dict]]:
    """The three queries as the code writes them now (captured from their modules)."""
    captured = {}
    original = dashboard.rows
    dashboard.rows = lambda db, sql, params: captured.setdefault("ui", (sql, params))
    try:
        dashboard.coil_defects(None, COIL)
    finally:
        dashboard.rows = original
    return {"quality watch: coil defects": (quality_store._DEFECTS + "t.tracked_coil = %(c)s ORDER BY t.metre,"
                                            " t.defect_id", {"c": COIL}),
            "UI coil page: coil defects": captured["ui"],
            "coil report: defects": (coil_report._DEFECTS, {"c": COIL, "tc": COIL, "limit": 50_000})}


FILL = """
SELECT ccl_month_partition('defect_detections', (date_trunc('month', now()) - n * interval '1 month')::date)
FROM generate_series(0, {months}) AS n WHERE to_regproc('ccl_month_partition') IS NOT NULL
  AND to_regclass('defect_detections_default') IS NOT NULL;
INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time, received_at)
SELECT 'C' || (n / 400), 'scratch', 0.5, 'low', t, t FROM generate_series(1, {defects}) AS n,
    LATERAL (SELECT now() - interval '{months} months' + n * (interval '{months} months' / {defects}) AS t) AS x;
INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time, received_at)
SELECT '{coil}', 'scratch', 0.5, 'low', t, t FROM generate_series(1, 1000) AS n,
    LATERAL (SELECT date_trunc('month', now()) + n * interval '1 s' AS t) AS x;
INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, head_at_camera, tail_at_camera, inspected_m,
    length_disagrees, schedule_present, wpd_seen, speed_gap_free, cut_seen, coverage, completeness, model_version,
    computed_at)
VALUES ('{coil}', '{coil}', date_trunc('month', now()), '{{}}', '{{}}', '{{}}', false, true, true, true, true, '{{}}',
    'complete', 1, now());
INSERT INTO tracking_defects (defect_id, camera_id, detected_at, time_source, status, tracked_coil, metre, box_coil,
    model_version, computed_at{received})
SELECT id, 'top', detection_time, 'box', 'placed', coil_number, (id % 1000)::float8, coil_number, 1, now(){received}
FROM defect_detections;
"""


def fill(dsn: str, defects: int) -> None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'tracking_defects'"
                       " AND column_name = 'defect_received_at'")
        received = ", defect_received_at" if cursor.fetchone()[0] else ""
        cursor.execute(FILL.format(months=MONTHS, defects=defects, coil=COIL, received=received).replace(
            "now(), defect_received_at", "now(), received_at"))
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    connection.cursor().execute("VACUUM ANALYZE")
    connection.close()


def timed(cursor, sql: str, params, runs: int) -> float:
    """Median milliseconds (planning + execution, from EXPLAIN ANALYZE) of ``runs`` runs."""
    found = []
    for _ in range(runs):
        cursor.execute("EXPLAIN (ANALYZE, SUMMARY) " + sql, params)
        text = "\n".join(row[0] for row in cursor.fetchall())
        found.append(sum(float(x) for x in re.findall(r"(?:Planning|Execution) Time: ([\d.]+) ms", text)))
    return statistics.median(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defects", type=int, default=1_500_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ccl-bench-keys-"))
    os.chmod(work, 0o755)
    cluster = LocalCluster(work / "pg", free_port())
    cluster.init(trust=True)
    cluster.start()
    try:
        admin = psycopg2.connect(cluster.superuser_dsn("postgres"))
        admin.autocommit = True
        for name in ("plain", "monthly"):
            admin.cursor().execute(f"CREATE DATABASE {name}")
        admin.close()
        plain, monthly = cluster.superuser_dsn("plain"), cluster.superuser_dsn("monthly")
        migrate(plain, below=123)
        migrate(monthly)
        for dsn in (plain, monthly):
            fill(dsn, args.defects)
        print(f"{args.defects:,} defects over {MONTHS} months, each with its tracking row; coil {COIL}: 1,000")
        print(f"{'query':30s} {'jit':4s} {'plain, by id':>13s} {'monthly, by key':>16s} {'monthly, by id':>15s}")
        current = by_key()
        with psycopg2.connect(plain) as p, psycopg2.connect(monthly) as m, p.cursor() as pc, m.cursor() as mc:
            for jit in ("off", "on"):
                for cursor in (pc, mc):
                    cursor.execute(f"SET jit = {jit}")
                for name, sql in BY_ID.items():
                    old = timed(pc, sql, {"c": COIL}, args.runs)
                    new = timed(mc, *current[name], args.runs)
                    naive = timed(mc, sql, {"c": COIL}, args.runs)
                    print(f"{name:30s} {jit:4s} {old:10.1f} ms {new:13.1f} ms {naive:12.1f} ms")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
