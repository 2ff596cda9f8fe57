"""The process monitor with real child processes (tests/support/children)."""

import os
import signal

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from ccl.orchestrator.monitor import Orchestrator
from tests.support.orchestrator import http_spec, pause, process_exists, settings, spec, wait_for


class MonitorTests(TestCase):
    timeout = 120

    def monitor(self, specs, **overrides) -> Orchestrator:
        monitor = Orchestrator(reactor, specs, settings(self, **overrides))
        monitor.startService()

        @defer.inlineCallbacks
        def stop():
            pids = [c.pid for c in monitor.children.values() if c.pid]
            if monitor.running:
                yield monitor.stopService()
            monitor.close_logs()
            for pid in pids:
                self.assertFalse(process_exists(pid), f"pid {pid} left running")
        self.addCleanup(stop)
        return monitor

    @defer.inlineCallbacks
    def test_sigkilled_child_comes_back_and_is_counted(self):
        """A child killed with SIGKILL is restarted, and the restart and the signal are recorded."""
        port = free_port()
        monitor = self.monitor([http_spec("web", port)])
        child = monitor.get("web")
        yield wait_for(lambda: child.state == "running", "web healthy")
        old = child.pid
        os.kill(old, signal.SIGKILL)
        yield wait_for(lambda: child.state == "running" and child.pid not in (None, old), "web back")
        self.assertEqual(child.restarts, 1)
        self.assertEqual(child.last_exit["signal"], signal.SIGKILL)
        self.assertFalse(child.last_exit["expected"])
        self.assertFalse(process_exists(old))

    @defer.inlineCallbacks
    def test_stop_stays_stopped_and_start_works_again(self):
        """A stopped child stays stopped through health intervals and back-offs, and starts again on request."""
        port = free_port()
        monitor = self.monitor([http_spec("web", port)])
        child = monitor.get("web")
        yield wait_for(lambda: child.state == "running", "web healthy")
        pid = child.pid
        yield monitor.stop("web")
        self.assertEqual(child.state, "stopped")
        self.assertFalse(process_exists(pid))
        self.assertTrue(child.last_exit["expected"])
        # Many health intervals (0.1 s) and back-off delays pass: nothing brings it back.
        yield pause(1.5)
        self.assertEqual((child.state, child.pid, child.restarts), ("stopped", None, 0))
        monitor.start("web")
        yield wait_for(lambda: child.state == "running", "web running again")
        self.assertNotEqual(child.pid, pid)

    @defer.inlineCallbacks
    def test_child_ignoring_term_is_killed_after_the_grace(self):
        """A child ignoring SIGTERM is killed with SIGKILL after the grace, and its log says so."""
        monitor = self.monitor([spec("stubborn", "ignore_term")], grace="0.5")
        child = monitor.get("stubborn")
        yield wait_for(lambda: "ignoring TERM" in "".join(child.log.tail(5)), "child ready")
        pid = child.pid
        yield monitor.stop("stubborn")
        self.assertEqual(child.last_exit["signal"], signal.SIGKILL)
        self.assertFalse(process_exists(pid))
        self.assertIn("SIGKILL", "\n".join(child.log.tail(10)))

    @defer.inlineCallbacks
    def test_crash_at_start_backs_off_then_ends_fatal(self):
        """A child crashing at start is restarted with back-off, then left fatal and not restarted."""
        monitor = self.monitor([spec("broken", "crash_at_start")], fatal_after="4")
        child = monitor.get("broken")
        seen = set()
        monitor.listeners.append(lambda event, c: seen.add(event))
        yield wait_for(lambda: seen.add(child.state) or child.state == "fatal", "fatal", interval=0.01)
        self.assertIn("backoff", seen)
        self.assertIn("fatal", seen)
        self.assertEqual(child.restarts, 3)
        self.assertEqual(child.last_exit["code"], 3)
        self.assertFalse(child.wanted)
        # fatal is left alone
        yield pause(1.5)
        self.assertEqual((child.state, child.restarts), ("fatal", 3))
        self.assertIn("cannot start (on purpose)", "\n".join(child.log.tail(50)))

    @defer.inlineCallbacks
    def test_failed_health_checks_restart_with_the_reason(self):
        """Failed health checks in a row restart the child, giving the reason."""
        port = free_port()
        sick = os.path.abspath(self.mktemp())
        monitor = self.monitor([http_spec("web", port, sick)], health_failures="3")
        child = monitor.get("web")
        yield wait_for(lambda: child.state == "running", "web healthy")
        pid = child.pid
        open(sick, "w").close()
        yield wait_for(lambda: child.restarts == 1, "restart after failed checks")
        os.unlink(sick)
        self.assertIn("health check failed 3 times in a row", child.last_restart_reason)
        self.assertIn("HTTP 503", child.last_restart_reason)
        yield wait_for(lambda: child.state == "running", "web healthy again")
        self.assertNotEqual(child.pid, pid)

    @defer.inlineCallbacks
    def test_tcp_check_and_a_child_never_healthy_is_restarted_with_the_reason(self):
        """A TCP check passes when its port answers; a child not healthy in start_timeout is restarted, reason given."""
        from ccl.orchestrator.services import Check

        port, closed = free_port(), free_port()
        good = spec("tcp-good", "serve_health", str(port), checks=(Check("tcp", f"127.0.0.1:{port}"),))
        bad = spec("tcp-bad", "serve_health", str(free_port()), checks=(Check("tcp", f"127.0.0.1:{closed}"),))
        monitor = self.monitor([good], start_timeout="30")
        impatient = self.monitor([bad], start_timeout="1")
        yield wait_for(lambda: monitor.get("tcp-good").state == "running", "tcp check passes")
        yield wait_for(lambda: impatient.get("tcp-bad").restarts >= 1, "restart of the never healthy child")
        self.assertIn("not healthy within 1 s of starting", impatient.get("tcp-bad").last_restart_reason)
        self.assertIn(f"connect 127.0.0.1:{closed}", impatient.get("tcp-bad").last_restart_reason)
        self.assertEqual(monitor.get("tcp-good").restarts, 0)

    @defer.inlineCallbacks
    def test_stopping_the_orchestrator_leaves_no_child(self):
        """Stopping the orchestrator stops every child, stubborn ones too."""
        port = free_port()
        monitor = self.monitor([http_spec("web", port), spec("stubborn", "ignore_term"), spec("lines", "print_lines", "5")],
                               grace="0.5")
        yield wait_for(lambda: all(c.state == "running" for c in monitor.children.values()), "all running")
        yield wait_for(lambda: "ignoring TERM" in "".join(monitor.get("stubborn").log.tail(5)), "stubborn ready")
        pids = [c.pid for c in monitor.children.values()]
        yield monitor.stopService()
        for pid in pids:
            self.assertFalse(process_exists(pid), f"pid {pid} still running")
        self.assertEqual({c.state for c in monitor.children.values()}, {"stopped"})

    @defer.inlineCallbacks
    def test_children_get_a_proper_environment(self):
        """Children get PATH, PYTHONPATH and LANG, and not the orchestrator's internal variables."""
        monitor = self.monitor([spec("env", "print_env")])
        child = monitor.get("env")
        yield wait_for(lambda: any(line.startswith("PATH=") for line in child.log.tail(20)), "env printed")
        env = dict(line.split("=", 1) for line in child.log.tail(20) if "=" in line and "[orchestrator]" not in line)
        self.assertIn("/bin", env["PATH"])
        self.assertTrue(env["PYTHONPATH"])
        self.assertTrue(env["LANG"])
        self.assertNotIn("CCL_ORCHESTRATOR_PID", env)  # consumed by exec_child, never seen by config

    def test_a_service_id_is_in_the_table_once(self):
        """A second child with the same id is refused instead of shadowing the first."""
        monitor = Orchestrator(reactor, [spec("web", "print_lines", "1")], settings(self))
        self.addCleanup(monitor.close_logs)
        with self.assertRaises(KeyError):
            monitor.add(spec("web", "print_lines", "2"))
        self.assertEqual(list(monitor.children), ["web"])


class PublicTwistedAPITests(TestCase):
    def test_the_orchestrator_does_not_build_on_procmon(self):
        """The monitor composes spawnProcess: no ProcessMonitor in its bases, no procmon import in
        ccl/orchestrator, so a Twisted upgrade cannot break it by changing procmon's private methods."""
        import ast
        import pathlib

        from twisted.runner.procmon import ProcessMonitor

        import ccl.orchestrator

        self.assertNotIn(ProcessMonitor, Orchestrator.__mro__)
        package = pathlib.Path(ccl.orchestrator.__file__).parent

        def imported(path):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    yield node.module or ""
                elif isinstance(node, ast.Import):
                    yield from (alias.name for alias in node.names)
        importing = [path.name for path in package.glob("*.py")
                     if any(name.startswith("twisted.runner") for name in imported(path))]
        self.assertEqual(importing, [])


class OrphanTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_children_die_with_a_killed_orchestrator(self):
        """Children exit when their orchestrator is killed with SIGKILL."""
        import subprocess
        import sys

        from ccl.orchestrator.services import child_environment
        from tests.support.children import program

        parent = subprocess.Popen([sys.executable, program("fake_orchestrator")], stdout=subprocess.PIPE,
                                  env=child_environment())
        self.addCleanup(lambda: parent.poll() is None and parent.kill())
        child_pid = int(parent.stdout.readline())
        parent.stdout.close()
        yield wait_for(lambda: process_exists(child_pid), "child started")
        os.kill(parent.pid, signal.SIGKILL)  # no chance to stop anything
        parent.wait()
        yield wait_for(lambda: not process_exists(child_pid), "the orphan to get its signal and exit")
