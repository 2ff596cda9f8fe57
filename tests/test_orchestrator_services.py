"""The real services of this checkout (their twistd plugins) as children of the orchestrator."""

import os
import signal

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from ccl.adapters.storage.localdb import free_port
from ccl.config import load_config
from ccl.orchestrator.monitor import Orchestrator
from ccl.orchestrator.services import SERVICES, children, project_root
from ccl.orchestrator.settings import Settings
from tests.support.database import fresh_database
from tests.support.orchestrator import environ, pause, process_exists, wait_for


def present_services() -> list[str]:
    plugins = {p.name for p in (project_root() / "twisted" / "plugins").glob("ccl_*.py")}
    return [s.id for s in SERVICES if f"{s.plugin.replace('-', '_')}.py" in plugins]


class RealServiceTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_every_service_starts_healthy_comes_back_after_sigkill_and_stays_stopped(self):
        """Every real service starts healthy, comes back once after SIGKILL, stays stopped when stopped."""
        services = present_services()
        if not services:
            raise SkipTest("no service plugin in this checkout yet")
        env = environ(self, services=", ".join(services), start_timeout="60", stable_after="2",
                      health_interval="0.2")
        base = os.path.dirname(env["CCL_PATHS_VAR"])
        env.update({
            "CCL_DATABASE_DSN": fresh_database(self),
            "CCL_MES_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_MES_ACK_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_MES_STATUS_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_GOKIWON_ENABLED": "false",
            "CCL_IMAGES_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_IMAGES_ROOT": os.path.join(base, "images"),
            "CCL_DEFECTS_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
            "CCL_UI_LISTEN": f"tcp:{free_port()}:interface=127.0.0.1",
        })
        config = load_config(env)
        specs = children(config, environ={**os.environ, **env})
        monitor = Orchestrator(reactor, specs, Settings.from_config(config))
        monitor.startService()

        @defer.inlineCallbacks
        def stop():
            pids = [c.pid for c in monitor.children.values() if c.pid]
            yield monitor.stopService()
            monitor.close_logs()
            for pid in pids:
                self.assertFalse(process_exists(pid))
        self.addCleanup(stop)

        def explain(name):
            return "\n".join(monitor.get(name).log.tail(30))

        for name in services:
            child = monitor.get(name)
            yield wait_for(lambda: child.state == "running" or child.state == "fatal", f"{name} healthy", timeout=90)
            self.assertEqual(child.state, "running", explain(name))
        for name in services:
            child = monitor.get(name)
            old = child.pid
            yield pause(max(0.0, 2.1 - (reactor.seconds() - child.started_at)))
            os.kill(old, signal.SIGKILL)
            yield wait_for(lambda: child.state == "running" and child.pid != old, f"{name} back", timeout=60)
            self.assertEqual(child.restarts, 1, explain(name))
            yield monitor.stop(name)
            yield pause(1)
            self.assertEqual((child.state, child.pid), ("stopped", None))
            monitor.start(name)
            yield wait_for(lambda: child.state == "running", f"{name} started again", timeout=60)
