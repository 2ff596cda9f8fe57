"""Restart latency: SIGKILL each child of a real orchestrator, time until it answers again.

    CCL_VENV=... .venv/bin/python bench/restart_latency.py [--kills 20] [--services a,b]

Starts everything itself in a throw-away directory: a local database (`ccl localdb setup`,
then run by the orchestrator as its `postgres` child), the orchestrator (`twistd -n -y
ccl.tac`) with every service whose plugin is in this checkout, on free ports. Then, round
robin over the children, each is killed with SIGKILL and the time until its health check
answers again (HTTP /health 200; a PostgreSQL connection for postgres) is recorded. A child
is only killed once it has run `stable_after` seconds, so every kill is a first crash (a
crash loop is backed off on purpose, see README). Prints p50/p99/max per service.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccl.adapters.storage.localdb import free_port  # noqa: E402
from ccl.orchestrator.services import SERVICES  # noqa: E402

STABLE_AFTER = 3.0


def write_config(base: Path, services: list[str]) -> tuple[Path, int, dict[str, int]]:
    ports = {key: free_port() for key in ("local", "mes", "ack", "status", "images", "defects", "ui", "api")}
    text = f"""
[database]
local_port = {ports['local']}
[paths]
var = {base}/var
logs = {base}/logs
[mes]
listen = tcp:{ports['mes']}:interface=127.0.0.1
ack_listen = tcp:{ports['ack']}:interface=127.0.0.1
status_listen = tcp:{ports['status']}:interface=127.0.0.1
[gokiwon]
enabled = false
[images]
listen = tcp:{ports['images']}:interface=127.0.0.1
root = {base}/images
[defects]
listen = tcp:{ports['defects']}:interface=127.0.0.1
[ui]
listen = tcp:{ports['ui']}:interface=127.0.0.1
[orchestrator]
listen = tcp:{ports['api']}:interface=127.0.0.1
services = {', '.join(services)}
grace = 5
stable_after = {STABLE_AFTER}
"""
    path = base / "bench.ini"
    path.write_text(text)
    return path, ports["api"], ports


def get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def health_ok(check: dict) -> bool:
    try:
        if check["kind"] == "postgres":
            psycopg2.connect(check["dsn"], connect_timeout=1).close()
            return True
        return get(check["url"], 0.5)[0] == 200
    except Exception:
        return False


def baseline(env: dict, api: str, checks: dict, services: list[str], runs: int = 5) -> None:
    """The same services started by hand (no orchestrator): their own start-up time, for comparison."""
    from ccl.orchestrator.services import twistd_argv

    plugins = {s.id: s.plugin for s in SERVICES}
    request = urllib.request.Request(f"{api}/stop-all", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {env['CCL_BENCH_TOKEN']}"})
    urllib.request.urlopen(request, timeout=120).read()
    request = urllib.request.Request(f"{api}/start/postgres", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {env['CCL_BENCH_TOKEN']}"})
    urllib.request.urlopen(request, timeout=120).read()
    while not health_ok(checks["postgres"]):
        time.sleep(0.05)
    print(f"for comparison, each service started by hand (twistd -n, no orchestrator), {runs} runs:")
    print(f"{'service':<22} {'runs':>5} {'p50 s':>7} {'max s':>7}")
    child_env = {k: v for k, v in env.items() if k != "CCL_BENCH_TOKEN"}
    for name in services:
        values = []
        for _ in range(runs):
            started = time.monotonic()
            process = subprocess.Popen(twistd_argv(plugins[name]), env=child_env, cwd=ROOT,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                while not health_ok(checks[name]):
                    if process.poll() is not None or time.monotonic() - started > 60:
                        raise SystemExit(f"{name} did not start by hand")
                    time.sleep(0.01)
                values.append(time.monotonic() - started)
            finally:
                process.terminate()
                process.wait(30)
        values.sort()
        print(f"{name:<22} {runs:>5} {statistics.median(values):>7.3f} {values[-1]:>7.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--services", help="comma-separated service ids (default: every plugin present)")
    args = parser.parse_args()
    present = {p.name for p in (ROOT / "twisted" / "plugins").glob("ccl_*.py")}
    services = [s.id for s in SERVICES if f"{s.plugin.replace('-', '_')}.py" in present]
    if args.services is not None:
        services = [s for s in args.services.split(",") if s]
    base = Path(tempfile.mkdtemp(prefix="ccl-bench-"))
    os.chmod(base, 0o755)
    config, api_port, ports = write_config(base, services)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
    env.update(CCL_CONFIG=str(config), PYTHONPATH=str(ROOT))
    bindir = Path(sys.executable).parent
    orchestrator = None
    try:
        subprocess.run([str(bindir / "ccl"), "localdb", "setup"], env=env, check=True, capture_output=True)
        subprocess.run([str(bindir / "ccl"), "localdb", "stop"], env=env, check=True, capture_output=True)
        dsn = (base / "var" / "database.dsn").read_text().strip()
        orchestrator = subprocess.Popen([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                                         "-n", "--pidfile=", "--logfile=-", "-y",
                                         str(ROOT / "ccl.tac")], env=env, cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{api_port}"
        checks = {"postgres": {"kind": "postgres", "dsn": dsn}}
        urls = {"mes-tcp-service": ports["status"], "image-receiver": ports["images"],
                "defect-data-receiver": ports["defects"], "ui-service": ports["ui"]}
        for name in services:
            checks[name] = {"kind": "http", "url": f"http://127.0.0.1:{urls[name]}/health"}
        subprocess.run([str(bindir / "ccl"), "ctl", "wait", "--timeout", "120"], env=env, check=True)
        env["CCL_BENCH_TOKEN"] = (base / "var" / "orchestrator.token").read_text().strip()
        print(f"services: {', '.join(checks)}; {args.kills} SIGKILLs each, round robin", flush=True)
        times: dict[str, list[float]] = {name: [] for name in checks}
        for round_number in range(args.kills):
            for name, check in checks.items():
                status = json.loads(get(f"{api}/status/{name}")[1])
                while status["state"] != "running" or (status["uptime"] or 0) < STABLE_AFTER:
                    time.sleep(max(0.05, STABLE_AFTER - (status["uptime"] or 0)))
                    status = json.loads(get(f"{api}/status/{name}")[1])
                os.kill(status["pid"], signal.SIGKILL)
                killed = time.monotonic()
                while not health_ok(check):
                    if time.monotonic() - killed > 60:
                        raise SystemExit(f"{name} did not come back within 60 s")
                    time.sleep(0.01)
                times[name].append(time.monotonic() - killed)
        print(f"{'service':<22} {'kills':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
        worst = 0.0
        for name, values in times.items():
            values.sort()
            p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
            worst = max(worst, p99)
            print(f"{name:<22} {len(values):>5} {statistics.median(values):>7.3f} {p99:>7.3f} {values[-1]:>7.3f}")
        print(f"target p99 < 2 s for every service: {'met' if worst < 2 else 'NOT met'} (worst p99 {worst:.3f} s)")
        baseline(env, api, checks, services)
        return 0
    finally:
        if orchestrator is not None:
            orchestrator.terminate()
            try:
                orchestrator.wait(60)
            except subprocess.TimeoutExpired:
                orchestrator.kill()
        subprocess.run([str(bindir / "ccl"), "localdb", "stop"], env=env, capture_output=True)
        if os.environ.get("CCL_BENCH_KEEP"):
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
