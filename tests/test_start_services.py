"""scripts/start-services.sh then stop-services.sh on a clean copy of the checkout (slow: one test).

The copy gets its own virtual environment, a throw-away configuration with free ports, and
a private var/, logs/ and image root, so nothing of the developer's setup is touched.
"""

import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.adapters.certificates import endpoint_string, issue_server_certificate, make_ca
from ccl.adapters.storage.localdb import free_port
from ccl.orchestrator.services import SERVICES, project_root


def _processes_mentioning(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if text in cmdline or cwd.startswith(text):
            found.append((int(entry.name), cmdline[:200]))
    return found


class StartStopScriptTests(SynchronousTestCase):
    timeout = 900

    def setUp(self):
        self.base = Path(tempfile.mkdtemp(prefix="ccl-start-"))
        os.chmod(self.base, 0o755)  # the local database runs as the postgres user
        self.checkout = self.base / "ccl"
        root = project_root()
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, files):
            if (root / name).is_file():
                (self.checkout / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / name, self.checkout / name)
        plugins = {p.name for p in (self.checkout / "twisted" / "plugins").glob("ccl_*.py")}
        services = [s for s in SERVICES if f"{s.plugin.replace('-', '_')}.py" in plugins]
        self.services = [s.id for s in services]
        self.api_port = free_port()
        ports = {key: free_port() for key in ("local", "mes", "ack", "status", "images", "defects", "ui")}
        self.ports = ports
        config = f"""
[database]
local_port = {ports['local']}
[paths]
var = {self.base}/var
logs = {self.base}/logs
[mes]
listen = tcp:{ports['mes']}:interface=127.0.0.1
ack_listen = tcp:{ports['ack']}:interface=127.0.0.1
status_listen = tcp:{ports['status']}:interface=127.0.0.1
[gokiwon]
enabled = false
[images]
listen = tcp:{ports['images']}:interface=127.0.0.1
root = {self.base}/images
[defects]
listen = tcp:{ports['defects']}:interface=127.0.0.1
[ui]
listen = tcp:{ports['ui']}:interface=127.0.0.1
[orchestrator]
listen = tcp:{self.api_port}:interface=127.0.0.1
services = {', '.join(self.services)}
grace = 5
"""
        (self.base / "test.ini").write_text(config)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CCL_", "PYTHON"))}
        self.env.update(CCL_CONFIG=str(self.base / "test.ini"), CCL_VENV=str(self.base / "venv"))
        self.addCleanup(self._clean)

    def _clean(self):
        self.script("stop-services.sh")
        for pid, _ in _processes_mentioning(str(self.base)):  # only if the test failed half way
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def script(self, name: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", f"scripts/{name}"], cwd=self.checkout, env=self.env, capture_output=True,
                              text=True, timeout=600)

    def status(self, base: str | None = None, context=None) -> dict:
        base = base or f"http://127.0.0.1:{self.api_port}"
        with urllib.request.urlopen(f"{base}/status", timeout=10, context=context) as response:
            return json.loads(response.read())

    def use_tls(self) -> Path:
        """Every HTTP listener on ssl: with a site CA from ccl tls init's code, the local cluster with
        TLS and the services on sslmode=verify-full; returns the CA file."""
        site = self.base / "tls"
        now = datetime.datetime.now(datetime.timezone.utc)  # OpenSSL checks validity against the real clock
        ca = make_ca(site, now=now)
        issued = issue_server_certificate(site, "server", ["127.0.0.1", "localhost"], now=now)
        config = (self.base / "test.ini").read_text()
        for key in ("status", "images", "defects", "ui"):
            port = self.ports[key]
            config = config.replace(f"tcp:{port}:interface=127.0.0.1", endpoint_string(port, issued, "127.0.0.1"))
        config = config.replace(f"tcp:{self.api_port}:interface=127.0.0.1",
                                endpoint_string(self.api_port, issued, "127.0.0.1"))
        config = config.replace("[database]\n", f"[database]\nsslmode = verify-full\nlocal_ssl_cert = {issued.cert}\n"
                                               f"local_ssl_key = {issued.key}\n")
        config += f"[tls]\nca_file = {ca}\n"
        (self.base / "test.ini").write_text(config)
        return ca

    def test_start_twice_then_stop_twice_leaves_nothing_running(self):
        """Starting twice starts once (one admin password, shown once); stopping twice leaves no process and says so."""
        started = self.script("start-services.sh")
        self.assertEqual(started.returncode, 0, started.stdout[-3000:] + started.stderr[-3000:])
        self.assertIn("password (shown once", started.stdout)
        self.assertIn(f"http://127.0.0.1:{self.api_port}/status", started.stdout)
        states = {s["service"]: s["state"] for s in self.status()["services"]}
        self.assertEqual(states, dict.fromkeys(["postgres", *self.services], "running"))
        token = self.base / "var" / "orchestrator.token"
        self.assertEqual(token.stat().st_mode & 0o777, 0o600)

        again = self.script("start-services.sh")
        self.assertEqual(again.returncode, 0, again.stdout[-3000:] + again.stderr[-3000:])
        self.assertIn("already running", again.stdout)
        self.assertNotIn("password", again.stdout)  # the admin exists: no second one

        stopped = self.script("stop-services.sh")
        self.assertEqual(stopped.returncode, 0, stopped.stdout + stopped.stderr)
        self.assertEqual(_processes_mentioning(str(self.base)), [])
        self.assertFalse((self.base / "var" / "orchestrator.pid").exists())
        twice = self.script("stop-services.sh")
        self.assertEqual(twice.returncode, 0, twice.stdout + twice.stderr)
        self.assertIn("not running", twice.stdout)
        self.assertTrue((self.base / "logs" / "orchestrator.log").stat().st_size > 0)
        self.assertTrue((self.base / "logs" / "postgres.log").exists())

    def test_start_and_stop_with_tls_everywhere(self):
        """ssl: listeners and a verify-full local database: the script waits over https, prints https URLs,
        the services are healthy (checked over https, connected to PostgreSQL over TLS), and stop works."""
        ca = self.use_tls()
        started = self.script("start-services.sh")
        self.assertEqual(started.returncode, 0, started.stdout[-3000:] + started.stderr[-3000:])
        self.assertIn(f"https://127.0.0.1:{self.api_port}/status", started.stdout)
        self.assertIn(f"https://127.0.0.1:{self.ports['ui']}", started.stdout)
        states = {s["service"]: s["state"] for s in
                  self.status(f"https://127.0.0.1:{self.api_port}", ssl.create_default_context(cafile=str(ca)))["services"]}
        self.assertEqual(states, dict.fromkeys(["postgres", *self.services], "running"))
        with self.assertRaises(urllib.error.URLError):  # the system's trust store does not know our CA
            self.status(f"https://127.0.0.1:{self.api_port}", ssl.create_default_context())
        dsn = (self.base / "var" / "database.dsn").read_text().strip()
        check = subprocess.run(
            [sys.executable, "-c", "import psycopg2, sys; c = psycopg2.connect(sys.argv[1]); k = c.cursor();"
             " k.execute('SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s"
             " JOIN pg_stat_activity a USING (pid) WHERE a.client_addr IS NOT NULL');"
             " print(*k.fetchone())", f"{dsn} sslmode=verify-full sslrootcert={ca}"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stderr)
        encrypted, plain = map(int, check.stdout.split())
        self.assertGreater(encrypted, 1)  # ours and the services' pools
        self.assertEqual(plain, 0)
        stopped = self.script("stop-services.sh")
        self.assertEqual(stopped.returncode, 0, stopped.stdout + stopped.stderr)
        self.assertIn("stopping every service through the orchestrator", stopped.stdout)
        self.assertNotIn("the API did not answer", stopped.stdout)
        self.assertEqual(_processes_mentioning(str(self.base)), [])
