"""The process monitor: owns the children with ``reactor.spawnProcess``; restarts, stops, health.

Composition, not inheritance: an earlier version subclassed ``twisted.runner.procmon.ProcessMonitor``
and overrode its private methods, which tied the code to one Twisted release. Now this module
uses only public Twisted API (``IReactorProcess.spawnProcess``, a ``ProcessProtocol``,
``IReactorTime.callLater``, ``Service``) and keeps the restart, back-off and stop logic itself.
It still avoids procmon's pitfalls (shared/notes/twisted-stack.md):

- a child gets a real environment (each ``ChildSpec`` carries one), never an empty one;
- a stop clears ``wanted`` and the exit handler respects it, so a stop stays stopped;
- ``stopService`` stops every child (its stop signal, SIGKILL after ``grace``) and returns a
  Deferred that twistd waits for, the database last;
- every exit is kept (code or signal, time) and each child writes its own rotated log file,
  whole lines only.

States: starting (spawned, first health check not passed yet), running, backoff (waiting to
restart after a crash), stopping, stopped (by an operator or at shutdown), fatal (crashed
``fatal_after`` times in a row at start-up; left alone until started again).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from twisted.application import service
from twisted.internet import defer, error, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from ccl.orchestrator.backoff import RestartPolicy
from ccl.orchestrator.child import Child, ChildProtocol, descendants, iso, kill_leftovers
from ccl.orchestrator.health import CheckFailed, run_check, scrape
from ccl.orchestrator.logfiles import RotatingLog
from ccl.orchestrator.services import ChildSpec
from ccl.orchestrator.settings import Settings

log = Logger()


class Orchestrator(service.Service):
    """Start, watch, restart and stop the children of ``specs``."""

    def __init__(self, reactor, specs: list[ChildSpec], settings: Settings):
        self._reactor = reactor
        self.settings = settings
        self.children: dict[str, Child] = {}
        self.listeners: list[Callable[[str, Child], None]] = []
        #: Called at shutdown once the services are down, before the database is stopped.
        self.before_database_stop: list[Callable[[], None]] = []
        self._loops: list[task.LoopingCall] = []
        self._started_wall = time.time()
        self._started_at = reactor.seconds()
        self._protocols: dict[str, ChildProtocol] = {}  # the children with a live process
        self._startup: defer.Deferred | None = None
        self._inflight: set[defer.Deferred] = set()
        for spec in specs:
            self.add(spec)

    # -- table -----------------------------------------------------------------------------

    def add(self, spec: ChildSpec) -> Child:
        s = self.settings
        child = Child(spec=spec, log=RotatingLog(s.logs / f"{spec.id}.log", s.log_max_bytes, s.log_keep),
                      policy=RestartPolicy(s.restart_delay, s.restart_delay_max, s.stable_after, s.fatal_after))
        if spec.id in self.children:
            raise KeyError(f"service {spec.id!r} is already in the table")
        self.children[spec.id] = child
        return child

    def get(self, name: str) -> Child:
        return self.children[name]

    def _emit(self, event: str, child: Child) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, child)
            except Exception:
                log.failure("listener for {event} failed", event=event)

    def _mark(self, child: Child, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        child.log.write_lines([f"{stamp} [orchestrator] {text}".encode("utf-8")])

    # -- service ---------------------------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        service.Service.startService(self)
        for interval, work in ((self.settings.health_interval, self.check_health),
                               (self.settings.metrics_interval, self.scrape_metrics)):
            loop = task.LoopingCall(work)
            loop.clock = self._reactor
            loop.start(interval, now=False).addErrback(lambda f: log.failure("monitor loop failed", f))
            self._loops.append(loop)
        self._startup = self.start_all()

    @defer.inlineCallbacks
    def start_all(self):
        """The database first, waited for until healthy (at most start_timeout), then the rest."""
        firsts = [c for c in self.children.values() if c.spec.first]
        for child in firsts:
            self.start(child.id)
        if firsts:
            yield self._wait_ready(firsts, self.settings.start_timeout)
        for child in self.children.values():
            if not child.spec.first and self.running:
                self.start(child.id)
        return [c.id for c in self.children.values()]

    def _wait_ready(self, children: list[Child], timeout: float) -> defer.Deferred:
        waits = []
        for child in children:
            if child.state == "running":
                continue
            waiter = defer.Deferred()
            child.ready_waiters.append(waiter)
            waits.append(waiter)
        done = defer.DeferredList(waits)
        timer = self._reactor.callLater(timeout, lambda: [w.callback(False) for w in waits if not w.called])
        done.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        return done

    def stopService(self) -> defer.Deferred:  # noqa: N802
        service.Service.stopService(self)
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        for pending in list(self._inflight):
            pending.cancel()
        return self.stop_all(shutting_down=True)

    @defer.inlineCallbacks
    def stop_all(self, shutting_down: bool = False):
        """Every child, the database last (the services close their connections first)."""
        others = [self.stop(c.id) for c in self.children.values() if not c.spec.first]
        yield defer.DeferredList(others)
        if shutting_down:
            for hook in self.before_database_stop:
                yield hook()
        yield defer.DeferredList([self.stop(c.id) for c in self.children.values() if c.spec.first])
        return [c.id for c in self.children.values()]

    # -- control ---------------------------------------------------------------------------

    def start(self, name: str) -> Child:
        """Want ``name`` running; start it now unless it is already up (or stopping: then after)."""
        child = self.children[name]
        child.wanted = True
        child.policy.reset()
        if child.pending_start is not None and child.pending_start.active():
            child.pending_start.cancel()
        child.pending_start = None
        if not child.alive():
            self._spawn(name)
        elif child.state == "stopping":
            child.restart_reason_pending = "started by operator while stopping"
        return child

    def stop(self, name: str) -> defer.Deferred:
        """Stop ``name`` for good (until started again); fires with the child once it has exited."""
        child = self.children[name]
        child.wanted = False
        child.restart_reason_pending = None
        if child.pending_start is not None and child.pending_start.active():
            child.pending_start.cancel()
        child.pending_start = None
        if not child.alive():
            child.state = "stopped"
            return defer.succeed(child)
        waiter = defer.Deferred()
        child.exit_waiters.append(waiter)
        self._signal(child)
        return waiter

    def restart_child(self, name: str, reason: str) -> defer.Deferred:
        """Stop and start again (operator or failed health); fires once the new process is spawned."""
        child = self.children[name]
        child.last_restart_reason = reason
        if not child.alive():
            self.start(name)
            return defer.succeed(child)
        child.wanted = True
        child.restart_reason_pending = reason
        waiter = defer.Deferred()
        child.exit_waiters.append(waiter)
        self._signal(child)
        return waiter

    def _signal(self, child: Child) -> None:
        if child.state != "stopping":
            child.state = "stopping"
            self._mark(child, f"stopping pid {child.pid} (SIG{child.spec.stop_signal},"
                              f" SIGKILL after {self.settings.grace:g} s)")
        proto = self._protocols.get(child.id)
        if proto is None or proto.transport is None:
            return
        try:
            proto.transport.signalProcess(child.spec.stop_signal)
        except error.ProcessExitedAlready:
            return
        if child.murder is None or not child.murder.active():
            child.murder = self._reactor.callLater(self.settings.grace, self._kill, child)

    def _kill(self, child: Child) -> None:
        proto = self._protocols.get(child.id)
        if proto is None or proto.transport is None:
            return
        self._mark(child, f"pid {child.pid} still running {self.settings.grace:g} s after"
                          f" SIG{child.spec.stop_signal}: SIGKILL")
        log.warn("{service}: pid {pid} ignored SIG{signal} for {grace} s: killing it",
                 service=child.id, pid=child.pid, signal=child.spec.stop_signal, grace=self.settings.grace)
        try:
            proto.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str) -> None:
        child = self.children[name]
        if name in self._protocols:
            return
        spec = child.spec
        proto = ChildProtocol(child, self._process_ended)
        self._protocols[name] = proto
        child.started_at = self._reactor.seconds()
        child.started_wall = time.time()
        child.failures = 0
        child.tcp_ok_at = None
        child.healthy_since = None
        child.health = {"status": "unknown"}
        child.reported = None
        child.metrics = []
        child.state = "starting" if spec.checks else "running"
        try:
            # exec_child ties the child's life to this process (the pid after twistd daemonized).
            env = dict(spec.env, CCL_ORCHESTRATOR_PID=str(os.getpid()))
            transport = self._reactor.spawnProcess(proto, spec.argv[0], spec.argv, env=env, path=spec.cwd,
                                                   uid=spec.uid, gid=spec.gid)
        except OSError as failure:
            child.pid = None
            self._mark(child, f"cannot start: {failure}")
            del self._protocols[name]
            self._exited(child, {"code": None, "signal": None, "error": str(failure)})
            return
        child.pid = transport.pid
        self._mark(child, f"started pid {child.pid}")
        log.info("{service}: started pid {pid}", service=name, pid=child.pid)
        if child.state == "running":
            self._ready(child)

    def _process_ended(self, child: Child, reason: Failure) -> None:
        self._protocols.pop(child.id, None)
        value = getattr(reason, "value", None)
        code = getattr(value, "exitCode", None)
        signal_number = getattr(value, "signal", None)
        if child.state != "stopping":
            # Died unexpectedly: its own children (PostgreSQL's backends) would linger as orphans
            # and keep the next start from binding its port or shared memory.
            kill_leftovers(child)
        child.descendants = {}
        self._exited(child, {"code": code, "signal": signal_number})

    def _exited(self, child: Child, how: dict) -> None:
        now = self._reactor.seconds()
        run = now - child.started_at if child.started_at is not None else 0.0
        if child.murder is not None and child.murder.active():
            child.murder.cancel()
        child.murder = None
        expected = child.state == "stopping"
        child.last_exit = dict(how, at=iso(time.time()), run_seconds=round(run, 3), expected=expected)
        what = f"signal {how['signal']}" if how.get("signal") else f"code {how.get('code')}"
        self._mark(child, f"pid {child.pid} exited with {what} after {run:.1f} s")
        (log.info if expected else log.warn)("{service}: pid {pid} exited with {what} after {run:.1f} s",
                                             service=child.id, pid=child.pid, what=what, run=run)
        child.pid = None
        child.started_at = None
        child.health = {"status": "unknown"}
        child.reported = None
        waiters, child.exit_waiters = child.exit_waiters, []
        self._emit("exited", child)

        if child.restart_reason_pending is not None and self.running:
            # An operator's or the health check's restart: back at once, not counted as a crash.
            reason, child.restart_reason_pending = child.restart_reason_pending, None
            self._count_restart(child, reason)
            self._spawn(child.id)
        elif not child.wanted or not self.running:
            child.state = "stopped"
        else:
            decision = child.policy.exited(run)
            if decision.fatal:
                child.state = "fatal"
                child.wanted = False
                child.last_restart_reason = f"crashed {child.policy.quick_crashes} times in a row within" \
                                            f" {self.settings.stable_after:g} s of starting: given up"
                self._mark(child, f"FATAL: {child.last_restart_reason}")
                log.error("{service}: {reason}", service=child.id, reason=child.last_restart_reason)
                self._emit("fatal", child)
            else:
                self._count_restart(child, f"exited with {what}")
                if decision.delay <= 0:
                    self._spawn(child.id)
                else:
                    child.state = "backoff"
                    self._mark(child, f"restarting in {decision.delay:g} s")
                    child.pending_start = self._reactor.callLater(decision.delay, self._restart_after_backoff, child)
        for waiter in waiters:
            waiter.callback(child)

    def _restart_after_backoff(self, child: Child) -> None:
        child.pending_start = None
        if child.wanted and self.running and not child.alive():
            self._spawn(child.id)

    def _count_restart(self, child: Child, reason: str) -> None:
        child.restarts += 1
        child.restart_times.append(self._reactor.seconds())
        child.last_restart_reason = reason

    def _ready(self, child: Child) -> None:
        waiters, child.ready_waiters = child.ready_waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(True)

    # -- health ----------------------------------------------------------------------------

    def check_health(self) -> None:
        for child in self.children.values():
            if child.alive():
                child.descendants = descendants(child.pid)
            if child.state in ("starting", "running") and child.spec.checks and not child.checking:
                child.checking = True
                self._track(self._check(child)).addBoth(self._checked, child, child.pid)

    def _track(self, d: defer.Deferred) -> defer.Deferred:
        """Checks and scrapes in flight, cancelled at shutdown so that nothing is left half open."""
        self._inflight.add(d)

        def done(result):
            self._inflight.discard(d)
            return result
        return d.addBoth(done)

    def _check(self, child: Child) -> defer.Deferred:
        timeout = self.settings.health_timeout
        now = self._reactor.seconds()
        checks = []
        for check in child.spec.checks:
            if check.kind == "tcp":
                # A connect shows up in the service's own log and connection figures: after a
                # success, repeat it only every tcp_check_interval s.
                if child.tcp_ok_at is not None and now - child.tcp_ok_at < self.settings.tcp_check_interval:
                    continue
                checks.append(run_check(self._reactor, check, timeout).addCallback(self._tcp_ok, child))
            else:
                checks.append(run_check(self._reactor, check, timeout))
        return defer.gatherResults(checks, consumeErrors=True)

    def _tcp_ok(self, result, child: Child):
        child.tcp_ok_at = self._reactor.seconds()
        return result

    def _checked(self, result, child: Child, pid: int | None) -> None:
        child.checking = False
        if child.pid != pid or child.state not in ("starting", "running"):
            return  # the answer of a process that is gone
        now = self._reactor.seconds()
        if not isinstance(result, Failure):
            child.failures = 0
            child.health = {"status": "ok", "checked_at": iso(time.time())}
            child.reported = next((answer for answer in result if isinstance(answer, dict)), child.reported)
            if child.healthy_since is None:
                child.healthy_since = now
            if child.state == "starting":
                child.state = "running"
                self._mark(child, "healthy: running")
                self._ready(child)
            return
        failure = result.value.subFailure if result.check(defer.FirstError) else result
        detail = failure.getErrorMessage() if failure.check(CheckFailed) else f"{failure.type.__name__}: {failure.getErrorMessage()}"
        child.failures += 1
        child.health = {"status": "failing", "checked_at": iso(time.time()), "detail": detail}
        if child.state == "running" and child.failures >= self.settings.health_failures:
            reason = f"health check failed {child.failures} times in a row: {detail}"
        elif child.state == "starting" and now - (child.started_at or now) >= self.settings.start_timeout:
            reason = f"not healthy within {self.settings.start_timeout:g} s of starting: {detail}"
        else:
            return
        self._mark(child, f"restarting: {reason}")
        log.warn("{service}: restarting: {reason}", service=child.id, reason=reason)
        self.restart_child(child.id, reason)

    def scrape_metrics(self) -> None:
        for child in self.children.values():
            if child.state == "running" and child.spec.metrics_url:
                d = self._track(scrape(self._reactor, child.spec.metrics_url, self.settings.health_timeout,
                                          child.spec.ca_file))
                d.addCallbacks(self._scraped, lambda failure: None, callbackArgs=(child, child.pid))

    def _scraped(self, samples, child: Child, pid) -> None:
        if child.pid == pid:
            child.metrics = samples
            child.metrics_at = time.time()

    # -- views -----------------------------------------------------------------------------

    def seconds(self) -> float:
        """The monitor's clock (the reactor's), which uptimes are measured on."""
        return self._reactor.seconds()

    def status(self, name: str) -> dict:
        return self.children[name].status(self.seconds())

    def status_all(self) -> dict:
        now = self.seconds()
        return {
            "orchestrator": {"pid": os.getpid(), "started_at": iso(self._started_wall),
                             "uptime": round(now - self._started_at, 3)},
            "services": [child.status(now) for child in self.children.values()],
        }

    def close_logs(self) -> None:
        for child in self.children.values():
            child.log.close()
