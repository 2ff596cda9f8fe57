"""ccl ctl: talk to the running orchestrator (status, start/stop/restart, logs, wait).

    ccl ctl status [ID]            state, pid, uptime, restarts, health of each service
    ccl ctl start|stop|restart ID  control one service (audited)
    ccl ctl start-all|stop-all
    ccl ctl logs ID [-n N] [-f]    last N lines (orchestrator: the orchestrator's own log)
    ccl ctl wait [--timeout S]     until every wanted service is running and healthy
    ccl ctl alerts                 open alerts

The address comes from ``[orchestrator] listen`` (https, verified with ``[tls] ca_file``, when
it is an ssl: endpoint), the token from ``[orchestrator] token`` or
``[paths] var/orchestrator.token``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from ccl.config import load_config
from ccl.orchestrator.auth import token_path
from ccl.adapters.tls import ca_file, stdlib_context
from ccl.orchestrator.services import listener

ACTIONS = ("status", "start", "stop", "restart", "start-all", "stop-all", "logs", "wait", "alerts")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("service", nargs="?", help="service id")
    parser.add_argument("-n", "--lines", type=int, default=100, help="logs: number of lines (at most 5000)")
    parser.add_argument("-f", "--follow", action="store_true", help="logs: keep printing new lines")
    parser.add_argument("--timeout", type=float, default=120, help="wait: seconds to wait at most")
    parser.add_argument("--json", action="store_true", help="print the API's JSON as it is")


class _Client:
    def __init__(self):
        config = load_config()
        self.base = listener(config, "orchestrator", "listen").url()
        self._config = config
        self.tls = stdlib_context(ca_file(config)) if self.base.startswith("https:") else None

    def open(self, request, timeout: float | None = None):
        return urllib.request.urlopen(request, timeout=timeout, context=self.tls)

    def token(self) -> str:
        configured = self._config.get("orchestrator", "token")
        if configured:
            return configured
        path = token_path(self._config.get_path("paths", "var"))
        try:
            return path.read_text(encoding="ascii").strip()
        except OSError as error:
            raise SystemExit(f"ccl ctl: cannot read the control token {path}: {error.strerror}") from None

    def request(self, method: str, path: str, timeout: float = 120):
        headers = {"Accept": "application/json"}
        if method == "POST":
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.base + path, method=method, headers=headers, data=b"" if method == "POST" else None)
        try:
            with self.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                return error.code, json.loads(body)
            except ValueError:
                return error.code, {"error": body.decode("utf-8", "replace")}


def _line(status: dict) -> str:
    exit_ = status.get("last_exit") or {}
    last = ""
    if exit_:
        last = f" last exit {'signal ' + str(exit_['signal']) if exit_.get('signal') else 'code ' + str(exit_.get('code'))}" \
               f" at {exit_.get('at')}"
    uptime = f"{status['uptime']:.0f}s" if status.get("uptime") is not None else "-"
    return (f"{status['service']:<22} {status['state']:<9} pid {str(status['pid'] or '-'):<8} up {uptime:<8}"
            f" restarts {status['restarts']:<3} health {status['health']['status']}{last}")


def _follow(client: _Client, service: str, lines: int) -> int:
    request = urllib.request.Request(f"{client.base}/logs/{service}?follow=1&lines={lines}")
    try:
        with client.open(request) as response:
            for raw in response:
                if raw.startswith(b"data: "):
                    sys.stdout.write(raw[6:].decode("utf-8", "replace"))
                    sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def run(args: argparse.Namespace) -> int:
    client = _Client()
    needs_service = args.action in ("start", "stop", "restart", "logs")
    if needs_service and not args.service:
        sys.stderr.write(f"ccl ctl {args.action}: a service id is needed\n")
        return 2
    try:
        if args.action == "wait":
            return _wait(client, args.timeout)
        if args.action == "logs" and args.follow:
            return _follow(client, args.service, args.lines)
        if args.action == "status":
            code, body = client.request("GET", f"/status/{args.service}" if args.service else "/status")
        elif args.action == "logs":
            code, body = client.request("GET", f"/logs/{args.service}?lines={args.lines}")
        elif args.action == "alerts":
            code, body = client.request("GET", "/alerts")
        elif args.action in ("start-all", "stop-all"):
            code, body = client.request("POST", f"/{args.action}")
        else:
            code, body = client.request("POST", f"/{args.action}/{args.service}")
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"ccl ctl: the orchestrator at {client.base} does not answer: {getattr(error, 'reason', error)}\n")
        return 3
    if code >= 400:
        sys.stderr.write(f"ccl ctl {args.action}: HTTP {code}: {body.get('error')}: {body.get('details')}\n")
        return 1
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    elif args.action == "logs":
        print("\n".join(body["lines"]))
    elif args.action == "status":
        for status in body.get("services", [body]):
            print(_line(status))
    elif args.action == "alerts":
        for alert in body["alerts"]:
            print(f"#{alert['id']} {alert['severity']:<8} {alert['rule']:<22} {alert['subject']:<20} {alert['message']}")
    else:
        for status in body.get("status", []) if isinstance(body.get("status"), list) else [body["status"]]:
            print(_line(status))
        print(f"{args.action}: {body.get('result')}")
    return 0


def _wait(client: _Client, timeout: float) -> int:
    """Until every wanted service is running with a passing health check; 1 on timeout or fatal."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            code, body = client.request("GET", "/status", timeout=5)
            services = body["services"]
            # running = passed its health check at least once since it started
            waiting = [s for s in services if s["wanted"] and s["state"] != "running"]
            fatal = [s["service"] for s in services if s["state"] == "fatal"]
            if fatal:
                sys.stderr.write(f"ccl ctl wait: gave up on {', '.join(fatal)} (see ccl ctl logs ID)\n")
                return 1
            if not waiting:
                return 0
            last = ", ".join(f"{s['service']} {s['state']}" for s in waiting)
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            last = "the orchestrator does not answer yet"
        if time.monotonic() > deadline:
            sys.stderr.write(f"ccl ctl wait: not ready after {timeout:g} s: {last}\n")
            return 1
        time.sleep(0.5)
