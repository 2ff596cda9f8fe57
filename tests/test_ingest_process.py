"""The real twistd service in a subprocess: killed with SIGKILL mid-upload, it leaves no partial file."""

import hashlib
import http.client
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
from PIL import Image
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from tests.support.database import fresh_database, query
from tests.support.ingest import image_bytes, multipart, pair_parts

ROOT = Path(__file__).resolve().parents[1]


def service_env(dsn, root, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k in ("CCL_VENV",)}
    env.update({"PYTHONPATH": str(ROOT), "CCL_DATABASE_DSN": dsn, "CCL_IMAGES_ROOT": root,
                "CCL_IMAGES_LISTEN": f"tcp:{port}:interface=127.0.0.1", "CCL_INGEST_ALLOW": "127.0.0.1"})
    return env


def start(env, log):
    process = subprocess.Popen([sys.executable, "-m", "twisted", "--log-format=text", "--log-file=-", "ccl-images"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(log.name))
    return process


def wait_healthy(port, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become healthy")


def post(port, body, content_type, timeout=30):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST", "/upload/pair", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    return response.status, response.read()


@attrs.define
class Running:
    dsn: str
    root: str
    port: int
    env: dict
    log: object
    process: subprocess.Popen


def run_service(testcase, **settings) -> Running:
    """A healthy ccl-images process on a fresh database and image root; ``settings`` are
    extra CCL_ variables. Killed at the end of the test if still running."""
    dsn = fresh_database(testcase)
    root = os.path.abspath(testcase.mktemp())
    port = free_port()
    log = open(os.path.abspath(testcase.mktemp()) + ".log", "wb")
    testcase.addCleanup(log.close)
    env = {**service_env(dsn, root, port), **settings}
    process = start(env, log)
    testcase.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
    wait_healthy(port, process)
    return Running(dsn, root, port, env, log, process)


class KillTests(TestCase):
    timeout = 120

    def test_sigkill_mid_upload_leaves_no_partial_file(self):
        """ccl-images killed with SIGKILL mid-upload leaves no partial file: every file on disk has its row and hash."""
        service = run_service(self)
        dsn, root, port, env, log, process = (service.dsn, service.root, service.port, service.env, service.log,
                                              service.process)

        big = Image.effect_noise((1500, 1500), 64).convert("RGB")
        buffer = io.BytesIO()
        big.save(buffer, "BMP")  # 6.75 MB: long enough to be caught half-way
        body, content_type = multipart(pair_parts(original=buffer.getvalue(), labeled=image_bytes("PNG", (800, 600))))
        stop = threading.Event()
        outcomes = []

        def hammer():
            while not stop.is_set():
                try:
                    outcomes.append(post(port, body, content_type)[0])
                except OSError:
                    outcomes.append("cut")

        workers = [threading.Thread(target=hammer) for _ in range(6)]
        for worker in workers:
            worker.start()
        # A client that sends half a body and waits: its bytes are in flight when the kill comes.
        partial = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        partial.putrequest("POST", "/upload/pair")
        partial.putheader("Content-Type", content_type)
        partial.putheader("Content-Length", str(len(body)))
        partial.endheaders()
        partial.send(body[: len(body) // 2])
        deadline = time.monotonic() + 20
        while outcomes.count(201) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        for worker in workers:
            worker.join()
        partial.close()
        self.assertGreaterEqual(outcomes.count(201), 3)

        rows = dict(query(dsn, "SELECT filename, sha256 FROM images"))
        for kind in ("original", "labeled"):
            for path in Path(root, kind).iterdir():
                data = path.read_bytes()
                if path.name in rows:
                    self.assertEqual(hashlib.sha256(data).hexdigest(), rows[path.name], path.name)
                with Image.open(path) as image:
                    image.load()  # a partial file would fail to decode

        # Restarted, the service clears temp/ and drops files that never got a row.
        process = start(env, log)
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        wait_healthy(port, process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and list(Path(root, "temp").iterdir()):
            time.sleep(0.1)
        self.assertEqual(list(Path(root, "temp").iterdir()), [])
        time.sleep(0.5)
        for kind in ("original", "labeled"):
            on_disk = {p.name for p in Path(root, kind).iterdir()}
            in_rows = {name for name in rows if f"_{kind}." in name}
            self.assertEqual(on_disk, in_rows)
        status, _ = post(port, *multipart(pair_parts()))
        self.assertEqual(status, 201)
        process.send_signal(signal.SIGTERM)
        # twist re-raises the signal after a clean stop, so the status reports SIGTERM.
        self.assertIn(process.wait(timeout=20), (0, -signal.SIGTERM))


class StartupTests(TestCase):
    def test_bad_setting_stops_start_up_with_a_clean_message(self):
        """A bad setting stops ccl-images start-up with a message naming it, no traceback."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update({"PYTHONPATH": str(ROOT), "CCL_IMAGES_MAX_FILE_MB": "fifty"})
        result = subprocess.run([sys.executable, "-m", "twisted", "ccl-images"], env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("CCL_IMAGES_MAX_FILE_MB", result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)


class WorkerThreadTests(TestCase):
    timeout = 120

    def test_uploads_use_at_most_the_configured_worker_threads(self):
        """Concurrent uploads all succeed using at most the configured number of worker threads."""
        service = run_service(self, CCL_IMAGES_WORKER_THREADS="2")
        port, process, log = service.port, service.process, service.log

        body, content_type = multipart(pair_parts(original=image_bytes("PNG", (1200, 1000)),
                                                  labeled=image_bytes("PNG", (1200, 1000))))
        outcomes, most_threads = [], 0

        def upload():
            for _ in range(5):
                outcomes.append(post(port, body, content_type)[0])

        clients = [threading.Thread(target=upload) for _ in range(8)]
        for client in clients:
            client.start()
        while any(client.is_alive() for client in clients):
            most_threads = max(most_threads, len(os.listdir(f"/proc/{process.pid}/task")))
            time.sleep(0.005)
        for client in clients:
            client.join()
        self.assertEqual(outcomes, [201] * 40)
        # The reactor thread, the two database threads of SyncPool and the 2 workers; with
        # Twisted's default pool 8 concurrent uploads would have 8 workers.
        self.assertLessEqual(most_threads, 5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        log.flush()
        self.assertIn(b"2 worker threads", Path(log.name).read_bytes())
