"""The control API on ``[orchestrator] listen``, as the plant's scripts call it.

GET  /status, /status/{id}, /logs/{id}?lines=N[&follow=1], /metrics, /alerts, /health, /host
POST /start/{id}, /stop/{id}, /restart/{id}, /start-all, /stop-all, /alerts/{n}/ack

GETs are read-only and open (the API listens on loopback by default); every POST needs
``Authorization: Bearer <token>`` and lands in ``audit_logs`` with who, what and the result.
``X-CCL-Actor: <user>`` (sent by the UI) is recorded as ``ui:<user>``.
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet import defer, task
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.storage.postgres import audit, retrying
from ccl.orchestrator import alerts as alert_store
from ccl.orchestrator import figures
from ccl.orchestrator.auth import actor_name, bearer_matches

log = Logger()

MAX_LINES = 5000
DEFAULT_LINES = 100
ORCHESTRATOR_LOG = "orchestrator"


def _json(request, body, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


def _copy(d: defer.Deferred) -> defer.Deferred:
    """A Deferred firing when ``d`` does, without touching ``d``'s own result."""
    copy = defer.Deferred()
    d.addBoth(lambda result: (copy.callback(None), result)[1])
    return copy


def _error(request, code: int, error: str, details=None) -> bytes:
    return _json(request, {"error": error, "details": details}, code)


class ControlAPI:
    app = Klein()

    def __init__(self, reactor, monitor, db, token: str, volumes: dict, host=None, orchestrator_log=None):
        self._reactor = reactor
        self.monitor = monitor
        self.host = host  # HostSampler, or None: no host figures
        self.db = db
        self._token = token
        self.volumes = volumes
        self.orchestrator_log = orchestrator_log
        self._audits: set[defer.Deferred] = set()

    def resource(self):
        return self.app.resource()

    # -- helpers ---------------------------------------------------------------------------

    def _authorised(self, request) -> bool:
        return bearer_matches(request.getHeader(b"authorization"), self._token)

    def _audit(self, request, actor: str, action: str, target: str | None, result: str, details=None) -> None:
        """Written in the background: stopping the database must not wait for its own audit row."""
        client = request.getClientAddress()
        address = getattr(client, "host", None)
        d = retrying(self._reactor, lambda: audit(self.db, actor=actor, action=action, target=target, result=result,
                                                  details=details, client_address=address),
                     what="audit of a control action", maximum=10)
        d.addErrback(lambda failure: log.failure("audit of {action} {target} failed", failure,
                                                 action=action, target=target))
        self._audits.add(d)
        d.addBoth(lambda _: self._audits.discard(d))

    def drain(self, timeout: float = 10.0) -> defer.Deferred:
        """Fires when the audit rows in flight are written (or ``timeout`` passed): shutdown waits for it."""
        pending = defer.DeferredList([_copy(d) for d in self._audits])
        pending.addTimeout(timeout, self._reactor, onTimeoutCancel=lambda *_: None)
        return pending.addErrback(lambda _: None)

    def _control(self, request, action: str, target: str | None, work, is_service: bool = True):
        """Authenticate, run ``work()`` (a Deferred of a JSON body), audit, answer."""
        actor = actor_name(request.getHeader(b"x-ccl-actor"))
        if not self._authorised(request):
            request.setHeader(b"www-authenticate", b'Bearer realm="ccl-orchestrator"')
            self._audit(request, "anonymous", f"orchestrator.{action}", target, "denied",
                        {"claimed_actor": actor})
            return _error(request, 401, "unauthorized", "this action needs Authorization: Bearer <token>"
                                                       " (the token is in [paths] var/orchestrator.token)")
        if is_service and target is not None and target not in self.monitor.children:
            return self._unknown(request, target)

        def done(body):
            self._audit(request, actor, f"orchestrator.{action}", target, body.get("result", "ok"), body)
            return _json(request, body)

        def failed(failure):
            log.failure("{action} {target} failed", failure, action=action, target=target)
            self._audit(request, actor, f"orchestrator.{action}", target, "error", {"error": failure.getErrorMessage()})
            return _error(request, 500, f"{action} failed", failure.getErrorMessage())

        return defer.maybeDeferred(work).addCallbacks(done, failed)

    def _unknown(self, request, name: str) -> bytes:
        return _error(request, 404, "unknown service", {"service": name, "known": list(self.monitor.children)})

    # -- reads -----------------------------------------------------------------------------

    @app.route("/health", methods=["GET"])
    def health(self, request):
        return _json(request, {"status": "ok"})

    @app.route("/status", methods=["GET"])
    def status_all(self, request):
        return _json(request, dict(self.monitor.status_all(), host=self._host_figures()))

    def _host_figures(self) -> dict | None:
        return self.host.latest() if self.host is not None else None

    @app.route("/host", methods=["GET"])
    def host_figures(self, request):
        figures = self._host_figures()
        if figures is None:
            return _error(request, 503, "no host figures yet", "the first reading of the host is still running")
        return _json(request, figures)

    @app.route("/status/<name>", methods=["GET"])
    def status_one(self, request, name):
        if name not in self.monitor.children:
            return self._unknown(request, name)
        return _json(request, self.monitor.status(name))

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request):
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return figures.render(self.monitor, self.volumes, host=self._host_figures()).encode("utf-8")

    @app.route("/alerts", methods=["GET"])
    def alerts(self, request):
        d = alert_store.open_alerts(self.db)
        d.addCallback(lambda rows: _json(request, {"alerts": rows}))
        d.addErrback(lambda failure: _error(request, 503, "database unavailable", failure.getErrorMessage()))
        return d

    def _log_for(self, name: str):
        if name == ORCHESTRATOR_LOG and self.orchestrator_log is not None:
            return self.orchestrator_log
        child = self.monitor.children.get(name)
        return child.log if child is not None else None

    @app.route("/logs/<name>", methods=["GET"])
    def logs(self, request, name):
        logfile = self._log_for(name)
        if logfile is None:
            return self._unknown(request, name)
        text = (request.args.get(b"lines") or [str(DEFAULT_LINES).encode()])[0].decode("ascii", "replace")
        if not text.isdigit() or not 0 <= int(text) <= MAX_LINES:
            return _error(request, 400, "bad lines", f"lines must be a whole number from 0 to {MAX_LINES}")
        count = int(text)
        follow = (request.args.get(b"follow") or [b"0"])[0] in (b"1", b"true", b"yes")
        lines = logfile.tail(count)
        if not follow:
            return _json(request, {"service": name, "lines": lines, "count": len(lines)})
        return self._follow(request, logfile, lines)

    def _follow(self, request, logfile, lines: list[str]):
        """Server-Sent Events: the tail first, then every new line as it is written."""
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")

        def send(batch: list[str]) -> None:
            request.write(b"".join(b"data: " + line.replace("\r", " ").encode("utf-8") + b"\n\n" for line in batch))

        send(lines)
        unsubscribe = logfile.follow(send)
        keepalive = task.LoopingCall(lambda: request.write(b": keep-alive\n\n"))
        keepalive.clock = self._reactor
        keepalive.start(15, now=False)

        def finished(_=None):
            unsubscribe()
            if keepalive.running:
                keepalive.stop()

        # Klein cancels this Deferred when the client goes away (stack notes): clean up then.
        return defer.Deferred(canceller=finished)

    # -- control ---------------------------------------------------------------------------

    @app.route("/start/<name>", methods=["POST"])
    def start(self, request, name):
        def work():
            child = self.monitor.children[name]
            before = child.state
            if child.alive() and child.state != "stopping":
                return {"service": name, "action": "start", "result": "already running", "status": self.monitor.status(name)}
            self.monitor.start(name)
            return {"service": name, "action": "start", "result": "ok", "previous_state": before,
                    "status": self.monitor.status(name)}
        return self._control(request, "start", name, work)

    @app.route("/stop/<name>", methods=["POST"])
    def stop(self, request, name):
        def work():
            before = self.monitor.children[name].state
            d = self.monitor.stop(name)
            return d.addCallback(lambda child: {
                "service": name, "action": "stop", "result": "ok" if before != "stopped" else "already stopped",
                "previous_state": before, "last_exit": child.last_exit, "status": self.monitor.status(name)})
        return self._control(request, "stop", name, work)

    @app.route("/restart/<name>", methods=["POST"])
    def restart(self, request, name):
        actor = actor_name(request.getHeader(b"x-ccl-actor"))

        def work():
            d = self.monitor.restart_child(name, f"restarted by {actor}")
            return d.addCallback(lambda child: {"service": name, "action": "restart", "result": "ok",
                                                "status": self.monitor.status(name)})
        return self._control(request, "restart", name, work)

    @app.route("/start-all", methods=["POST"])
    def start_all(self, request):
        def work():
            d = self.monitor.start_all()
            return d.addCallback(lambda names: {"action": "start-all", "result": "ok", "services": names,
                                                "status": self.monitor.status_all()["services"]})
        return self._control(request, "start-all", None, work)

    @app.route("/stop-all", methods=["POST"])
    def stop_all(self, request):
        def work():
            d = self.monitor.stop_all()
            return d.addCallback(lambda names: {"action": "stop-all", "result": "ok", "services": names,
                                                "status": self.monitor.status_all()["services"]})
        return self._control(request, "stop-all", None, work)

    @app.route("/alerts/<int:alert_id>/ack", methods=["POST"])
    def acknowledge(self, request, alert_id):
        actor = actor_name(request.getHeader(b"x-ccl-actor"))

        def work():
            d = alert_store.acknowledge(self.db, alert_id, actor)
            return d.addCallback(lambda found: {"alert": alert_id, "action": "acknowledge",
                                                "result": "ok" if found else "not found or already acknowledged"})
        return self._control(request, "alert.ack", str(alert_id), work, is_service=False)

    # -- errors ----------------------------------------------------------------------------

    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return _error(request, 404, "not found", request.path.decode("latin-1"))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request, failure):
        return _error(request, 405, "method not allowed", request.method.decode("latin-1"))
