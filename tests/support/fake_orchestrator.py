"""A small real HTTP server speaking the orchestrator's control API, for UI tests.

It follows the documented API of issue 5 (the shape its ccl/orchestrator/api.py answers
with): GET /status -> {"orchestrator": {...}, "services": [{"service", "state", "pid", ...}]},
POST /start|stop|restart/{id} with a bearer token, GET /logs/{id}?lines=N and ?follow=1
(Server-Sent Events, one ``data:`` per line). It records every request it gets. Its
``/status`` carries ``host``: two real readings of this machine, made by the orchestrator's
own code (``ccl.orchestrator.host``), so the UI shows what the orchestrator would send.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import attrs
from klein import Klein
from twisted.internet import defer, endpoints, reactor
from twisted.web import server


def host_figures() -> dict:
    """What the orchestrator's ``/status`` gives under ``host``, from two readings of this machine."""
    from ccl.orchestrator.host import figures, read_host

    volumes = {"images": Path(tempfile.gettempdir()), "journal": Path(tempfile.gettempdir()) / "journal"}
    first = read_host(volumes)
    return dict(figures(first, read_host(volumes)), interval=5.0)


@attrs.define
class FakeOrchestrator:
    token: str
    services: dict = attrs.field(factory=lambda: {
        "mes-tcp-service": {"state": "running", "pid": 4101, "uptime": 3600.0, "restarts": 0, "last_exit": None,
                            "health": {"status": "ok", "failures": 0}},
        "ui-service": {"state": "running", "pid": 4102, "uptime": 120.5, "restarts": 2,
                       "last_exit": {"code": None, "signal": 9, "at": "2026-01-05T08:00:00+09:00"},
                       "health": {"status": "ok", "failures": 0}},
    })
    log_lines: list = attrs.field(factory=lambda: [f"line {n}" for n in range(1, 301)])
    host: dict | None = attrs.field(factory=host_figures)
    calls: list = attrs.field(factory=list)
    followers: list = attrs.field(factory=list)
    port: object = None

    def resource(self):
        app = Klein()

        def record(request):
            self.calls.append({
                "method": request.method.decode(), "path": request.uri.decode(),
                "authorization": (request.getHeader(b"authorization") or b"").decode(),
                "actor": (request.getHeader(b"x-ccl-actor") or b"").decode("utf-8"),
            })

        def answer(request, body, code=200):
            request.setResponseCode(code)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(body).encode()

        @app.route("/status", methods=["GET"])
        def status(request):
            record(request)
            body = {"orchestrator": {"pid": 1, "uptime": 10.0},
                    "services": [dict(v, service=k) for k, v in self.services.items()]}
            if self.host is not None:
                body["host"] = self.host
            return answer(request, body)

        @app.route("/<action>/<name>", methods=["POST"])
        def control(request, action, name):
            record(request)
            if request.getHeader(b"authorization") != f"Bearer {self.token}".encode():
                return answer(request, {"error": "unauthorized", "details": "bearer token"}, 401)
            if action not in ("start", "stop", "restart"):
                return answer(request, {"error": "not found"}, 404)
            if name not in self.services:
                return answer(request, {"error": "unknown service", "details": {"service": name}}, 404)
            self.services[name]["state"] = "stopped" if action == "stop" else "running"
            return answer(request, {"service": name, "action": action, "result": "ok"})

        @app.route("/logs/<name>", methods=["GET"])
        def logs(request, name):
            record(request)
            if name not in self.services:
                return answer(request, {"error": "unknown service"}, 404)
            count = int((request.args.get(b"lines") or [b"100"])[0])
            lines = self.log_lines[-count:] if count else []
            if (request.args.get(b"follow") or [b"0"])[0] != b"1":
                return answer(request, {"service": name, "lines": lines, "count": len(lines)})
            request.setHeader(b"content-type", b"text/event-stream")
            request.write(b"".join(b"data: " + line.encode() + b"\n\n" for line in lines))
            self.followers.append(request)
            gone = defer.Deferred(canceller=lambda _: self.followers.remove(request))
            return gone

        return app.resource()

    def push(self, line: str) -> None:
        """A new log line: sent to every follower."""
        self.log_lines.append(line)
        for request in list(self.followers):
            request.write(b"data: " + line.encode() + b"\n\n")

    def start(self, testcase) -> str:
        self.port = reactor.listenTCP(0, server.Site(self.resource()), interface="127.0.0.1")
        testcase.addCleanup(self.stop)
        return f"http://127.0.0.1:{self.port.getHost().port}"

    @defer.inlineCallbacks
    def start_tls(self, testcase, endpoint: str):
        """Listen on the ``ssl:`` server endpoint string ``endpoint``; fires with the https base URL."""
        self.port = yield endpoints.serverFromString(reactor, endpoint).listen(server.Site(self.resource()))
        testcase.addCleanup(self.stop)
        return f"https://127.0.0.1:{self.port.getHost().port}"

    def stop(self):
        for request in list(self.followers):
            request.loseConnection() if hasattr(request, "loseConnection") else request.transport.loseConnection()
        return self.port.stopListening()
