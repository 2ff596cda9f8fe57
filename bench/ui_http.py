"""Pages and JSON endpoints over real HTTP against a real ``twistd ccl-ui`` subprocess, and
the live-update latency (INSERT + NOTIFY, as the services send them -> SSE event at a client).

Used by bench/ui_queries.py --http; synchronous (stdlib http.client, psycopg2), run in a thread.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ui(dsn: str, var: Path, image_root: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_UI_LISTEN=f"tcp:{port}:interface=127.0.0.1",
               CCL_PATHS_VAR=str(var), CCL_IMAGES_ROOT=str(image_root), CCL_UI_ORCHESTRATOR_URL="http://127.0.0.1:9")
    process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format=text", "ccl-ui"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("ccl-ui did not start")


def add_admin(dsn: str, username: str, password: str) -> None:
    from ccl.domain.accounts import hash_password

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO users (username, password_hash, role) VALUES (%s, %s, 'admin')"
                       " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
                       (username, hash_password(password)))
    connection.close()


class Client:
    """Keeps one HTTP/1.1 connection and the session cookie."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        sent.update(headers or {})
        self.connection.request(method, path, body=body, headers=sent)
        response = self.connection.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data

    def login(self, username: str, password: str) -> None:
        status, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token, "next": "/"})
        status, _ = self.request("POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 303:
            raise RuntimeError(f"login failed: {status}")


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    print(f"{name:<40} p50 {ms[len(ms) // 2]:7.1f} ms   p95 {percentile(ms, 0.95):7.1f} ms   max {ms[-1]:7.1f} ms"
          f"   (n={len(ms)})", flush=True)


def cases(dsn: str) -> list[tuple[str, str]]:
    today = datetime.date.today()
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT coil_number FROM tc_4002_wpd ORDER BY received_at DESC LIMIT 1")
        (coil,) = cursor.fetchone()
        cursor.execute("SELECT min(id) FROM images WHERE kind = 'original'")
        (image,) = cursor.fetchone()
        cursor.execute("SELECT min(id) FROM ai_models")
    connection.close()
    year = (today - datetime.timedelta(days=364)).isoformat()
    return [
        ("GET / (dashboard page)", "/"),
        ("GET /api/dashboard", "/api/dashboard"),
        ("GET /api/dashboard?part=speed", "/api/dashboard?part=speed"),
        ("GET /api/dashboard?part=defects", "/api/dashboard?part=defects&after=0"),
        ("GET /coils (30 days)", "/coils"),
        ("GET /coils page 10 by customer", "/coils?sort=customer_name&order=asc&page=10"),
        ("GET /coils?coil=2604 (1 year)", f"/coils?coil=2604&from={year}"),
        ("GET /coils?defect_type=edge_crack", "/coils?defect_type=edge_crack"),
        ("GET /api/coils", "/api/coils"),
        ("GET /coils/<current coil>", f"/coils/{coil}"),
        ("GET /coils/<old coil>", "/coils/C26010000"),
        ("GET /api/coils/<coil>", f"/api/coils/{coil}"),
        ("GET /api/images/<id>", f"/api/images/{image}"),
        ("GET /statistics (30 days)", "/statistics"),
        ("GET /api/statistics (7 days)", f"/api/statistics?from={(today - datetime.timedelta(days=6)).isoformat()}"),
        ("GET /statistics (365 days)", f"/statistics?from={year}"),
        ("GET /models", "/models"),
        ("GET /api/models", "/api/models"),
    ]


def measure_live(dsn: str, port: int, cookies: dict, rounds: int) -> None:
    """INSERT a defect + NOTIFY in one transaction (as the defect service does); time until
    the SSE event reaches a client reading /api/events."""
    arrivals: list[float] = []
    ready = threading.Event()
    sock = socket.create_connection(("127.0.0.1", port))
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n".encode())

    def reader():
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if b"event: hello" in event:
                    ready.set()
                elif b"event: defect" in event and b"bench-live" in event:
                    arrivals.append(time.perf_counter())

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(10):
        raise RuntimeError("no hello event on /api/events")
    connection = psycopg2.connect(dsn)
    samples = []
    try:
        for n in range(rounds):
            before = len(arrivals)
            with connection, connection.cursor() as cursor:
                cursor.execute("""INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,
                                  detection_time, event_id) VALUES ('C26049999', 'scratch', 0.9, 'high', now(), %s)
                                  RETURNING id""", (str(__import__("uuid").uuid4()),))
                (defect_id,) = cursor.fetchone()
                cursor.execute("SELECT pg_notify('ccl_events', %s)", (json.dumps(
                    {"table": "defect_detections", "id": defect_id, "coil_number": "C26049999", "source": "bench-live"}),))
                sent = time.perf_counter()
            deadline = time.monotonic() + 5
            while len(arrivals) == before and time.monotonic() < deadline:
                time.sleep(0.0005)
            if len(arrivals) == before:
                raise RuntimeError("live event did not arrive within 5 s")
            samples.append(arrivals[before] - sent)
            time.sleep(0.02)
    finally:
        connection.close()
        sock.close()
    report("live: COMMIT+NOTIFY -> SSE event", samples)


def measure(dsn: str, base: Path, rounds: int) -> None:
    var = base / "var"
    images = base / "images"
    var.mkdir(exist_ok=True)
    images.mkdir(exist_ok=True)
    password = secrets.token_urlsafe(12)
    add_admin(dsn, "bench", password)
    process, port = start_ui(dsn, var, images)
    try:
        client = Client(port)
        client.login("bench", password)
        for name, path in cases(dsn):
            status, _ = client.request("GET", path)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}")
            samples, budget = [], time.monotonic() + 15.0
            while len(samples) < rounds and (len(samples) < 5 or time.monotonic() < budget):
                began = time.perf_counter()
                client.request("GET", path)
                samples.append(time.perf_counter() - began)
            report(name, samples)
        began = time.perf_counter()
        status, body = client.request("GET", "/coils.csv?from=2020-01-01")
        lines = body.count(b"\n") - 1
        print(f"{'GET /coils.csv (all coils)':<40} {(time.perf_counter() - began) * 1000:7.1f} ms"
              f" for {lines} rows, {len(body) / 1e6:.1f} MB (HTTP {status})", flush=True)
        measure_live(dsn, port, client.cookies, max(20, rounds))
    finally:
        process.terminate()
        process.wait(10)
