"""Benchmark of coil tracking: a day of plant data placed from scratch, and the cost per defect
placed live.

1. A synthetic day (30,000 telegrams: line speed, welds, cuts, schedules; 50,000 defects on two
   cameras) is written into a throw-away cluster (fsync on); the true coil and metre of every
   defect is known from a finer simulation of the line than the MES reports.
   ``ccl tracking rebuild`` then tracks the whole day from scratch (wall time, its CPU and
   PostgreSQL's), and the placements are checked against the truth.
2. ccl-defects runs as a subprocess on a line running now (speed telegrams every 3 s with
   their NOTIFY); defects are posted one per request at a steady rate, once with
   ``[tracking] live = false`` and once with it on. The difference of the service's CPU per
   defect is what live tracking adds (its sweep included).

    CCL_VENV=/work/venv-x $CCL_VENV/bin/python bench/tracking.py [--live-defects 3000]

Targets: live placement adds < 1 ms of CPU per defect; a full day rebuilt in < 30 s.
"""

from __future__ import annotations

import argparse
import bisect
import io
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2

from _service import ROOT, Bench, LeanConnection, cluster_cpu_seconds

from ccl.adapters.storage import partitions
from ccl.adapters.storage.localdb import LocalCluster, free_port
from ccl.adapters.storage.migrations import migrate

KST = timezone(timedelta(hours=9))
DAY = datetime(2026, 11, 2, tzinfo=KST).timestamp()
WPD_TO_CAMERA, CAMERA_TO_SHEAR = 50.0, 200.0
CAMERAS = {"top": 50.0, "bottom": 51.5}
TRACKING_ENV = {"CCL_TRACKING_WPD_TO_CAMERA_M": "50", "CCL_TRACKING_CAMERA_TO_SHEAR_M": "200",
                "CCL_TRACKING_CAMERA_OFFSETS_M": "top:0, bottom:1.5"}
TELEGRAMS, DEFECTS = 30_000, 50_000


# A day of the line -----------------------------------------------------------------------

class TrueLine:
    """The line's true speed (m/s) every 0.25 s (a random walk around 120 m/min with stops),
    and its odometer; the MES reports a rounded sample of it every few seconds."""

    STEP = 0.25

    def __init__(self, start: float, seconds: float, rng: random.Random, stops: int = 12):
        n = int(seconds / self.STEP) + 2
        # each stop: (begins, standing from, moving from, back at speed): 30 s down, 1-10 min, 60 s up
        plan = []
        for begin in sorted(rng.uniform(0.05, 0.95) * seconds for _ in range(stops)):
            standing = rng.uniform(60, 600)
            plan.append((begin, begin + 30, begin + 30 + standing, begin + 90 + standing))
        speed, target, speeds = 2.0, 2.0, []
        for i in range(n):
            t = i * self.STEP
            stop = next((p for p in plan if p[0] <= t < p[3]), None)
            if stop is None:
                target = min(140 / 60, max(100 / 60, target + rng.uniform(-0.01, 0.01)))
                speed += (target - speed) * 0.05
            elif t < stop[1]:
                speed = max(0.0, speed - 2.0 / 30 * self.STEP)
            elif t < stop[2]:
                speed = 0.0
            else:
                speed = min(target, speed + 2.0 / 60 * self.STEP)
            speeds.append(speed)
        self.start, self.speeds = start, speeds
        self.odometer = [0.0]
        for a, b in zip(speeds, speeds[1:]):
            self.odometer.append(self.odometer[-1] + (a + b) / 2 * self.STEP)

    def position(self, t: float) -> float:
        f = (t - self.start) / self.STEP
        i = min(max(0, int(f)), len(self.odometer) - 2)
        return self.odometer[i] + (self.odometer[i + 1] - self.odometer[i]) * (f - i)

    def speed(self, t: float) -> float:
        return self.speeds[min(max(0, round((t - self.start) / self.STEP)), len(self.speeds) - 1)]

    def time_at(self, x: float) -> float:
        i = bisect.bisect_left(self.odometer, x)
        return self.start + i * self.STEP


def plant_day(rng: random.Random):
    """(telegrams by table, defects with their truth)."""
    line = TrueLine(DAY - 3600, 86400 + 7200, rng)
    coils, x = [], line.position(DAY - 1800)  # the first weld half an hour before the day
    while True:
        at = line.time_at(x)
        if at > DAY + 86400 + 3000:
            break
        length = rng.uniform(1200, 2400)
        coils.append((f"H{500000 + len(coils)}", at, x, length))
        x += length
    shear = WPD_TO_CAMERA + CAMERA_TO_SHEAR
    welds = [(at, number) for number, at, _x, _l in coils]
    schedules = [(at - 600, number, round(length)) for number, at, _x, length in coils]
    cuts = []
    for number, _at, head, length in coils:
        if rng.random() < 0.3:  # cut in two
            half = round(length / 2)
            cuts.append((line.time_at(head + half + shear), number, 1, half))
            cuts.append((line.time_at(head + length + shear), number, 1, round(length - half)))
        else:
            cuts.append((line.time_at(head + length + shear), number, 1, round(length)))
    day = lambda at: DAY <= at < DAY + 86400  # noqa: E731
    welds, schedules, cuts = [w for w in welds if day(w[0])], [s for s in schedules if day(s[0])], \
        [c for c in cuts if day(c[0])]
    n_speed = TELEGRAMS - len(welds) - len(schedules) - len(cuts)
    every = 86400 / n_speed
    speeds = [(DAY + i * every, round(line.speed(DAY + i * every) * 60)) for i in range(n_speed)]
    heads = [c[2] for c in coils]
    # Defects from the moment the day's first weld reached the cameras (the strip before it
    # belongs to a coil whose weld was reported the day before, not loaded here).
    first = line.time_at(heads[next(i for i, c in enumerate(coils) if c[1] >= DAY)] + max(CAMERAS.values())) + 1
    defects = []
    for n in range(DEFECTS):
        at = rng.uniform(first, DAY + 86400 - 600)
        camera = rng.choice(("top", "bottom"))
        x = line.position(at) - CAMERAS[camera]
        k = bisect.bisect_right(heads, x) - 1
        defects.append((at, camera, coils[k][0], x - heads[k]))
    return {"speeds": speeds, "welds": welds, "schedules": schedules, "cuts": cuts}, defects


def _sent(at: float) -> str:
    return datetime.fromtimestamp(math.floor(at), timezone.utc).isoformat()


def _received(at: float, rng: random.Random) -> str:
    return datetime.fromtimestamp(at + rng.uniform(0.005, 0.05), timezone.utc).isoformat()


def load_day(dsn: str, telegrams: dict, defects: list, rng: random.Random) -> list[int]:
    """COPY everything in; the defects' ids in the order of ``defects``."""
    connection = psycopg2.connect(dsn)
    seq = iter(range(1, 10**9))
    tables = {
        "tc_4003_speed": ("line_speed",), "tc_4002_wpd": ("coil_number",),
        "tc_4001_cut": ("coil_number", "cut_mode", "winding_length"),
        "tc_4000_schedule": ("coil_number", "length_value")}
    rows = {"tc_4003_speed": [(at, (v,)) for at, v in telegrams["speeds"]],
            "tc_4002_wpd": [(at, (n,)) for at, n in telegrams["welds"]],
            "tc_4001_cut": [(at, (n, m, w)) for at, n, m, w in telegrams["cuts"]],
            "tc_4000_schedule": [(at, (n, length)) for at, n, length in telegrams["schedules"]]}
    with connection, connection.cursor() as cursor:
        # The day's month has its partitions, as on a running plant (else its rows sit in DEFAULT).
        partitions.ensure_partitions(connection, datetime.fromtimestamp(DAY, timezone.utc).date(), 0)
        for table, columns in tables.items():
            text = io.StringIO()
            for at, values in rows[table]:
                s = next(seq)
                text.write("\t".join(["CCL1", str(s % 999999 + 1), _sent(at), _received(at, rng),
                                      *(str(v) for v in values), f"\\\\x{s:08x}"]) + "\n")
            text.seek(0)
            cursor.copy_expert(f"COPY {table} (line_code, sequence_no, sent_at, received_at, {', '.join(columns)}, raw)"
                               f" FROM STDIN", text)
        text = io.StringIO()
        for at, camera, coil, _metre in defects:
            stamp = datetime.fromtimestamp(at, timezone.utc).isoformat()
            text.write(f"{coil}\tscratch\t0.9\thigh\t{stamp}\t{_received(at, rng)}\t{camera}\n")
        text.seek(0)
        cursor.copy_expert("COPY defect_detections (coil_number, defect_type, confidence_score, severity,"
                           " detection_time, received_at, camera_id) FROM STDIN", text)
        cursor.execute("SELECT id FROM defect_detections ORDER BY id")
        ids = [r[0] for r in cursor.fetchall()]
        cursor.execute("ANALYZE")
    connection.close()
    return ids


def pg_cpu(cluster: LocalCluster) -> float:
    return cluster_cpu_seconds(cluster, exited=True)  # the CLI's backends have exited by then


def day_rebuild(rng: random.Random) -> None:
    work = Path(tempfile.mkdtemp(prefix="ccl-bench-"))
    os.chmod(work, 0o755)  # initdb runs as the postgres user when we are root
    work_cluster = LocalCluster(work / "pg", free_port())
    work_cluster.init(trust=True)
    work_cluster.start(fast=False)
    try:
        dsn = work_cluster.superuser_dsn("postgres")
        migrate(dsn)
        made = time.perf_counter()
        telegrams, defects = plant_day(rng)
        ids = load_day(dsn, telegrams, defects, rng)
        count = sum(len(v) for v in telegrams.values())
        print(f"day of {datetime.fromtimestamp(DAY, KST):%Y-%m-%d}: {count:,} telegrams"
              f" ({len(telegrams['speeds']):,} speed, {len(telegrams['welds'])} welds, {len(telegrams['cuts'])} cuts,"
              f" {len(telegrams['schedules'])} schedules), {len(defects):,} defects; made and loaded in"
              f" {time.perf_counter() - made:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k == "CCL_VENV"}
        env.update({"PYTHONPATH": str(ROOT), **TRACKING_ENV})
        since = datetime.fromtimestamp(DAY, KST).isoformat()
        until = datetime.fromtimestamp(DAY + 86400, KST).isoformat()
        for label in ("from scratch", "again (nothing moves)"):
            pg_before = pg_cpu(work_cluster)
            child_before = os.times()
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "ccl", "tracking", "rebuild", "--from", since, "--to", until,
                                     "--dsn", dsn, "--json"], capture_output=True, text=True, env=env)
            wall = time.perf_counter() - started
            child = os.times()
            if result.returncode != 0:
                raise SystemExit(result.stderr)
            report = json.loads(result.stdout)
            cpu = (child.children_user - child_before.children_user) + (child.children_system - child_before.children_system)
            print(f"rebuild {label}: {wall:.2f} s wall (target < 30 s), CLI CPU {cpu:.2f} s,"
                  f" PostgreSQL CPU {pg_cpu(work_cluster) - pg_before:.2f} s; {report['placements']:,} placements,"
                  f" {report['written']:,} written, {report['coils']} coils, {report['delays']} delay log entries")
        connection = psycopg2.connect(dsn)
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT defect_id, tracked_coil, metre, uncertainty_m FROM tracking_defects")
            placed = {r[0]: r[1:] for r in cursor.fetchall()}
        connection.close()
        errors, within, wrong_coil, unplaced, near_weld = [], 0, 0, 0, 0
        widths = []
        for defect_id, (_at, _camera, coil, metre) in zip(ids, defects):
            tracked, placed_metre, uncertainty = placed.get(defect_id, (None, None, None))
            if tracked is None:
                unplaced += 1
                continue
            if tracked != coil:
                wrong_coil += 1
                # placed just after a weld while truly just before it, or the other way round
                near_weld += min(placed_metre, metre) <= uncertainty
                continue
            errors.append(abs(placed_metre - metre))
            widths.append(uncertainty)
            within += abs(placed_metre - metre) <= uncertainty
        print(f"accuracy against the true metre: {unplaced} not placed, {wrong_coil} on the neighbouring coil"
              f" ({near_weld} of them within their uncertainty of the weld);"
              f" error median {statistics.median(errors):.2f} m, p99 {sorted(errors)[int(len(errors) * 0.99)]:.2f} m,"
              f" max {max(errors):.2f} m; stated uncertainty median {statistics.median(widths):.2f} m;"
              f" {within / len(errors):.2%} within their stated uncertainty")
    finally:
        work_cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


# Live -----------------------------------------------------------------------------------

def insert(connection, table: str, at: float, column: str, value, seq: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH ins AS (INSERT INTO {table} (line_code, sequence_no, sent_at, received_at, {column}, raw)"
            f" VALUES ('CCL1', %s, to_timestamp(%s), to_timestamp(%s), %s, %s) RETURNING id, tc_code)"
            f" SELECT pg_notify('ccl_events', json_build_object('table', %s, 'id', id, 'tc_code', tc_code)::text)"
            f" FROM ins", (seq % 999999 + 1, math.floor(at), at, value, f"{seq}".encode(), table))


def live_cost(live: bool, count: int, rate: float) -> tuple[float, float, int]:
    bench = Bench("ccl-defects", env={**TRACKING_ENV, "CCL_TRACKING_LIVE": "true" if live else "false"})
    try:
        connection = psycopg2.connect(bench.dsn)
        connection.autocommit = True
        now = time.time()
        seq = 0
        # The line ran for the last 20 minutes at 120 m/min; coil B entered 5 minutes ago.
        for at in [now - 1200 + 3 * i for i in range(400)]:
            seq += 1
            insert(connection, "tc_4003_speed", at, "line_speed", 120, seq)
        for at, coil in ((now - 1100, "A"), (now - 300, "B")):
            seq += 1
            insert(connection, "tc_4002_wpd", at, "coil_number", coil, seq)
        time.sleep(2.0)  # the tracker's first sweep
        stop = threading.Event()

        def feeder():
            nonlocal seq
            while not stop.wait(3.0):
                seq += 1
                insert(connection, "tc_4003_speed", time.time(), "line_speed", 120, seq)

        thread = threading.Thread(target=feeder, daemon=True)
        thread.start()
        client = LeanConnection(bench.port)
        before_service, before_pg = bench.cpu_seconds(), bench.pg_cpu_seconds()
        started = time.perf_counter()
        for n in range(count):
            body = json.dumps({"coil_number": "B", "defect_type": "scratch", "confidence_score": 0.9,
                               "camera_id": "top" if n % 2 else "bottom",
                               "detection_time": datetime.fromtimestamp(time.time() - 0.3, timezone.utc).isoformat()})
            code = client.request("POST", "/defect/single", body.encode(), {"Content-Type": "application/json"})
            if code != 201:
                raise SystemExit(f"POST /defect/single answered {code}")
            pause = started + (n + 1) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        time.sleep(4.0)  # the last provisional placements settle with the next speed sample
        service, pg = bench.cpu_seconds() - before_service, bench.pg_cpu_seconds() - before_pg
        stop.set()
        thread.join()
        placed = bench.count("tracking_defects")
        client.close()
        connection.close()
        return service / count, pg / count, placed
    finally:
        bench.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live-defects", type=int, default=3000, help="defects posted in each live run")
    parser.add_argument("--rate", type=float, default=100.0, help="defects posted per second in the live runs")
    parser.add_argument("--skip", default="", help="day or live: leave that part out")
    args = parser.parse_args()
    if "day" not in args.skip:
        day_rebuild(random.Random(13))
    if "live" not in args.skip:
        off = live_cost(False, args.live_defects, args.rate)
        on = live_cost(True, args.live_defects, args.rate)
        print(f"live, {args.live_defects:,} single posts at {args.rate:g}/s, speed telegram every 3 s:")
        print(f"  ccl-defects CPU per defect: tracking off {off[0] * 1000:.3f} ms, on {on[0] * 1000:.3f} ms"
              f" -> tracking adds {(on[0] - off[0]) * 1000:.3f} ms (target < 1 ms);"
              f" PostgreSQL {off[1] * 1000:.3f} -> {on[1] * 1000:.3f} ms; placed {on[2]:,} of {args.live_defects:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
