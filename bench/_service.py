"""What the ingestion benchmarks share: a throw-away cluster, the service as a subprocess,
its peak RSS, a keep-alive HTTP client pool and percentiles. Prints, never asserts."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402


class Bench:
    """A cluster (fsync on, like the plant's) and one service subprocess."""

    def __init__(self, plugin: str, env: dict | None = None):
        self.work = Path(tempfile.mkdtemp(prefix="ccl-bench-"))
        os.chmod(self.work, 0o755)
        self.cluster = LocalCluster(self.work / "pg", free_port())
        self.cluster.init(trust=True)
        self.cluster.start(fast=False)
        self.dsn = self.cluster.superuser_dsn("postgres")
        migrate(self.dsn)
        self.port = free_port()
        self.root = self.work / "images"
        section = "images" if plugin == "ccl-images" else "defects"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k == "CCL_VENV"}
        full_env.update({"PYTHONPATH": str(ROOT), "CCL_DATABASE_DSN": self.dsn, "CCL_IMAGES_ROOT": str(self.root),
                         f"CCL_{section.upper()}_LISTEN": f"tcp:{self.port}:interface=127.0.0.1",
                         "CCL_INGEST_ALLOW": "127.0.0.1", **(env or {})})
        self.log = open(self.work / "service.log", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-file=-", "--log-format=text", plugin],
                                        env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.process.pid)
        self._wait_healthy()
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _wait_healthy(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"service did not start; see {self.work / 'service.log'}")

    def _sample(self):
        while self._sampling:
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def rss_now(self) -> int:
        return self.ps.memory_info().rss

    def cpu_seconds(self) -> float:
        """CPU time of the service process (user + system), to show the cost per request."""
        times = self.ps.cpu_times()
        return times.user + times.system

    def cpu_snapshot(self) -> tuple[float, float, float]:
        """(service, PostgreSQL, this client) CPU seconds so far; see ``cpu_per_request``."""
        return self.cpu_seconds(), self.pg_cpu_seconds(), client_cpu_seconds()

    def cpu_per_request(self, before: tuple[float, float, float], requests: int) -> tuple[float, float, float]:
        """(service, PostgreSQL, client) CPU seconds per request since the ``before`` snapshot."""
        now = self.cpu_snapshot()
        return tuple((after - was) / max(1, requests) for after, was in zip(now, before))

    def count(self, table: str) -> int:
        import psycopg2

        with psycopg2.connect(self.dsn) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            count = cursor.fetchone()[0]
        connection.close()
        return count

    def pg_cpu_seconds(self) -> float:
        """CPU time of the PostgreSQL server (postmaster and its live children): the database's
        share of the cost per request, on the same two cores."""
        return cluster_cpu_seconds(self.cluster)

    def reset_peak(self):
        self.peak_rss = self.rss_now()

    def close(self):
        self._sampling = False
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        self.cluster.destroy()
        shutil.rmtree(self.work, ignore_errors=True)


def cluster_cpu_seconds(cluster: LocalCluster, *, exited: bool = False) -> float:
    """CPU seconds of a cluster's postmaster and its live children; with ``exited``, also of
    the children it has reaped (the backends of clients that have disconnected)."""
    try:
        pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
        root = psutil.Process(pid)
        total = 0.0
        if exited:
            times = root.cpu_times()
            total += times.children_user + times.children_system
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total
    except (OSError, ValueError, psutil.Error):
        return 0.0


class LeanConnection:
    """A minimal keep-alive HTTP/1.1 client: one request at a time, replies with Content-Length.

    The benchmark's client shares the two cores with the service and PostgreSQL. http.client
    cost about 0.5 ms of CPU per request (its reply parsing goes through the email package),
    a quarter of the machine at 1,000 requests a second; this costs a tenth of that, so the
    figures show the service rather than the client. The Jetsons run on their own boxes.
    """

    def __init__(self, port: int, timeout: float = 60.0):
        self.port = port
        self.timeout = timeout
        self.sock = None

    def _connect(self):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method: str, path: str, body: bytes, headers: dict) -> int:
        """Send one request and read the whole reply; returns the status code."""
        if self.sock is None:
            self._connect()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        if len(body) < 65536:
            self.sock.sendall(head + body)
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if b"content-length" not in fields:
            if fields.get(b"transfer-encoding", b"").lower() != b"chunked":
                raise ConnectionError(f"reply {status} without Content-Length")
            self._read_chunked(rest)
            return status
        remaining = int(fields[b"content-length"]) - len(rest)
        while remaining > 0:
            chunk = self.sock.recv(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("the server closed the connection mid-reply")
            remaining -= len(chunk)
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return status

    def _read_chunked(self, data: bytes) -> None:
        """Skip a chunked body (chunk sizes, data, the final empty chunk and its blank line)."""
        while True:
            while b"\r\n" not in data:
                data += self._more()
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += self._more()
            data = data[size + 2:]
            if size == 0:
                return

    def _more(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-reply")
        return chunk

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _client_threads(port, threads, offset, stride, make_request, measure_from, stop_at):
    latencies: list[float] = []
    failures: list = []
    lock = threading.Lock()

    def worker(n):
        connection = LeanConnection(port)
        i = n
        while time.time() < stop_at:
            method, path, body, headers = make_request(i)
            i += stride
            started = time.time()
            began = time.perf_counter()
            try:
                status = connection.request(method, path, body, headers)
            except (OSError, ValueError) as error:
                status = repr(error)
                connection.close()
            elapsed = time.perf_counter() - began
            if started >= measure_from and started < stop_at:
                with lock:
                    if isinstance(status, int) and 200 <= status < 300:
                        latencies.append(elapsed)
                    else:
                        failures.append(status)
        connection.close()

    pool = [threading.Thread(target=worker, args=(offset * threads + n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies, failures


def run_clients(port: int, concurrency: int, make_request, duration: float, warmup: float = 1.0,
                processes: int = 1):
    """Keep ``concurrency`` requests in flight for ``duration`` seconds after a warm-up.

    ``make_request(i) -> (method, path, body, headers)``. With ``processes`` > 1 the clients
    run in forked processes, so that the client's own GIL does not cap the rate.
    Returns (latencies of 2xx replies, failures, seconds measured).
    """
    measure_from = time.time() + warmup
    stop_at = measure_from + duration
    if processes <= 1:
        latencies, failures = _client_threads(port, concurrency, 0, concurrency, make_request, measure_from, stop_at)
        return latencies, failures, duration
    import multiprocessing

    context = multiprocessing.get_context("fork")
    per = concurrency // processes
    pipes, children = [], []
    for p in range(processes):
        receiver, sender = context.Pipe(duplex=False)

        def child(p=p, sender=sender):
            sender.send(_client_threads(port, per, p, concurrency, make_request, measure_from, stop_at))
            sender.close()

        process = context.Process(target=child)
        process.start()
        pipes.append(receiver)
        children.append(process)
    latencies, failures = [], []
    for receiver in pipes:
        got_latencies, got_failures = receiver.recv()
        latencies += got_latencies
        failures += got_failures
    for process in children:
        process.join()
    return latencies, failures, duration


def client_cpu_seconds() -> float:
    """CPU time of this benchmark process and its finished client processes."""
    import resource

    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
