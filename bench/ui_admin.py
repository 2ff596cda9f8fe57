"""p50/p95 of the 시스템, 관리 and review endpoints over real HTTP against a real ``ccl-ui``.

    CCL_VENV=/work/venv-x; $CCL_VENV/bin/python bench/ui_admin.py [--audit N --defects N --rounds N]

Starts a throw-away PostgreSQL cluster (removed afterwards), migrates it, seeds
``--audit`` audit rows over 90 days (default 1,000,000), 2,000 past and 20 open alerts and
``--defects`` defects (default 200,000), starts a small stand-in for the orchestrator's
``/status`` on a free port and ``twistd ccl-ui`` as a subprocess, logs in as an admin and
times each endpoint ``--rounds`` times. Prints name, p50, p95, max in milliseconds.
Target: p95 < 100 ms; logging in is slower on purpose (Argon2id, ~100 ms of CPU).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402
from ccl.domain.accounts import hash_password  # noqa: E402

PASSWORD = "bench password 1234"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(name: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(f"{name:<42} p50 {statistics.median(ms):7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms"
          f"   max {max(ms):7.1f} ms   (n={len(ms)})", flush=True)


def seed(dsn: str, audit: int, defects: int) -> None:
    began = time.perf_counter()
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_logs (at, actor, client_address, action, target, result, details)"
            " SELECT now() - (n * (90 * 86400.0 / %s)) * interval '1 second',"
            "        (ARRAY['kim', 'lee', 'park', 'choi', 'cli:root'])[1 + n %% 5], '10.0.0.' || (n %% 250),"
            "        (ARRAY['ui.login', 'ui.logout', 'defect.review', 'alert.acknowledge', 'user.update',"
            "               'service.restart', 'settings.update'])[1 + n %% 7], 't' || n, 'ok', '{}'::jsonb"
            " FROM generate_series(1, %s) AS n", (audit, audit))
        cursor.execute(
            "INSERT INTO alerts (rule, subject, severity, message, raised_at, cleared_at)"
            " SELECT 'rule' || (n % 7), 'subject' || n, 'warning', 'past alert ' || n,"
            "        now() - n * interval '1 hour', now() - n * interval '1 hour' + interval '10 minutes'"
            " FROM generate_series(1, 2000) AS n")
        cursor.execute(
            "INSERT INTO alerts (rule, subject, severity, message)"
            " SELECT 'open_rule', 'open' || n, 'critical', 'open alert ' || n FROM generate_series(1, 20) AS n")
        cursor.execute(
            "INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time)"
            " SELECT 'C' || (26000000 + n / 20), (ARRAY['scratch', 'dent', 'stain'])[1 + n %% 3], 0.7, 'medium',"
            "        now() - n * interval '10 seconds' FROM generate_series(1, %s) AS n", (defects,))
        cursor.execute("INSERT INTO users (username, password_hash, role) VALUES ('bench', %s, 'admin')",
                       (hash_password(PASSWORD),))
        for n in range(30):
            cursor.execute("INSERT INTO users (username, password_hash, role) VALUES (%s, 'x', 'viewer')",
                           (f"user{n:02d}",))
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    print(f"seeded {audit:,} audit rows, 2,020 alerts, {defects:,} defects in {time.perf_counter() - began:.1f} s",
          flush=True)


class _Orchestrator(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"services": [{"service": name, "state": "running", "pid": 100 + i, "uptime": 60.0,
                                         "restarts": 0, "health": {"status": "ok"}}
                                        for i, name in enumerate(("mes-tcp-service", "image-receiver",
                                                                  "defect-data-receiver", "ui-service"))]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Client:
    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        if method != "GET":
            sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data

    def login(self) -> float:
        self.cookies = {}
        status, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        form = urllib.parse.urlencode({"username": "bench", "password": PASSWORD, "csrf_token": token}).encode()
        began = time.perf_counter()
        status, _ = self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        took = time.perf_counter() - began
        if status != 303:
            raise RuntimeError(f"login failed: {status}")
        status, body = self.request("GET", "/api/whoami")
        self.csrf = json.loads(body)["csrf_token"]
        return took


def measure(port: int, dsn: str, rounds: int) -> None:
    client = Client(port)
    report("POST /login (Argon2id on purpose)", [client.login() for _ in range(max(5, rounds // 6))])
    client.login()
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT id FROM alerts WHERE cleared_at IS NULL ORDER BY id")
        open_alerts = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT min(id), max(id) FROM defect_detections")
        low, high = cursor.fetchone()
    connection.close()
    day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 30 * 86400))
    gets = [
        ("GET /system", "/system"),
        ("GET /api/system/services", "/api/system/services"),
        ("GET /api/alerts?state=all", "/api/alerts?state=all"),
        ("GET /admin/users", "/admin/users"),
        ("GET /admin/audit", "/admin/audit"),
        ("GET /admin/audit?actor=kim", "/admin/audit?actor=kim"),
        ("GET /admin/audit?action=user.", "/admin/audit?action=user."),
        ("GET /admin/audit?from=D&to=D (one day)", f"/admin/audit?from={day}&to={day}"),
        ("GET /admin/audit?page=20", "/admin/audit?page=20"),
        ("GET /admin/settings", "/admin/settings"),
        ("GET /api/defect-types", "/api/defect-types"),
    ]
    for name, path in gets:
        samples = []
        for _ in range(rounds):
            began = time.perf_counter()
            status, _ = client.request("GET", path)
            samples.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
        report(name, samples)
    picks = random.Random(7)
    reviewed = []
    samples = []
    for n in range(rounds):
        defect = picks.randint(low, high)
        body = json.dumps({"action": ("confirm", "false_positive")[n % 2], "comment": "bench"}).encode()
        began = time.perf_counter()
        status, answer = client.request("POST", f"/api/defects/{defect}/review", body,
                                        {"Content-Type": "application/json"})
        samples.append(time.perf_counter() - began)
        if status != 200:
            raise RuntimeError(f"review: HTTP {status} {answer[:200]}")
        reviewed.append(defect)
    report("POST /api/defects/{id}/review", samples)
    samples = []
    for defect in reviewed:
        began = time.perf_counter()
        client.request("GET", f"/api/defects/{defect}/reviews")
        samples.append(time.perf_counter() - began)
    report("GET /api/defects/{id}/reviews", samples)
    samples = []
    for alert in open_alerts:
        began = time.perf_counter()
        status, _ = client.request("POST", f"/api/alerts/{alert}/ack", b"{}", {"Content-Type": "application/json"})
        samples.append(time.perf_counter() - began)
    report("POST /api/alerts/{id}/ack", samples)


def start_ui(dsn: str, var: Path, orchestrator: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_PATHS_VAR=str(var),
               CCL_UI_LISTEN=f"tcp:{port}:interface=127.0.0.1", CCL_UI_ORCHESTRATOR_URL=orchestrator)
    env.pop("CCL_VENV", None)
    process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format=text", "ccl-ui"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("ccl-ui did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--defects", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ccl-bench-admin-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    orchestrator = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Orchestrator)
    threading.Thread(target=orchestrator.serve_forever, daemon=True).start()
    process = None
    try:
        cluster.init(trust=True)
        cluster.start(fast=True)
        dsn = cluster.superuser_dsn("postgres")
        migrate(dsn)
        seed(dsn, args.audit, args.defects)
        process, port = start_ui(dsn, base / "var", f"http://127.0.0.1:{orchestrator.server_address[1]}")
        measure(port, dsn, args.rounds)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        orchestrator.shutdown()
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
