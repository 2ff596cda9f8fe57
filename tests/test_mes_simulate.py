"""ccl simulate mes: a production run against the real service, replies checked."""

import os
import sys
from pathlib import Path

from twisted.internet import defer, utils
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import free_port
from tests.support.database import fresh_database, query
from tests.support.mes import port_of, start_service, wait_for

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
    env["PYTHONPATH"] = str(ROOT)
    return utils.getProcessOutputAndValue(sys.executable, ("-m", "ccl", *args), env=env)


class SimulateMesTests(TestCase):
    @defer.inlineCallbacks
    def test_a_production_run_is_acked_and_stored(self):
        """A simulated production run (every TC and alives) is all ACKed and stored."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn)
        port = port_of(service.settings.listen)
        out, err, code = yield run_cli("simulate", "mes", "--to", f"127.0.0.1:{port}", "--count", "400",
                                       "--speedup", "3000")
        text = out.decode()
        self.assertEqual(code, 0, text + err.decode())
        self.assertIn("result:  all telegrams ACKed", text)
        self.assertIn("NAKed:   none", text)
        yield wait_for(lambda: service.writer.backlog == 0 and service.writer.applied_upto == 400)
        counts = query(dsn, "SELECT (SELECT count(*) FROM tc_4000_schedule), (SELECT count(*) FROM tc_4001_cut),"
                            " (SELECT count(*) FROM tc_4002_wpd), (SELECT count(*) FROM tc_4003_speed)")[0]
        self.assertEqual(sum(counts), 400)
        self.assertTrue(all(counts), counts)  # schedules, cuts, WPD passes and speeds all came
        customers = {row[0] for row in query(dsn, "SELECT customer_name FROM tc_4000_schedule")}
        self.assertTrue(customers & {"이알텍㈜", "동국씨엠", "똠방각하"}, customers)
        # Alive telegrams went along (never ACKed, never stored).
        self.assertIsNotNone(service.links.peers["127.0.0.1"].alive_count)
        for line in text.splitlines():
            if line.startswith("ACKed:"):
                self.assertIn("TC 4003:", line)

    @defer.inlineCallbacks
    def test_missing_acks_make_it_fail(self):
        """When the service sends no ACKs, the simulator reports the missing replies and exits 1."""
        dsn = fresh_database(self)
        service = yield start_service(self, dsn, reply_ack=False)
        out, err, code = yield run_cli("simulate", "mes", "--to", f"127.0.0.1:{port_of(service.settings.listen)}",
                                       "--count", "5", "--rate", "100", "--timeout", "0.5")
        self.assertEqual(code, 1)
        self.assertIn("MISSING: 5 telegrams got no reply", out.decode())

    @defer.inlineCallbacks
    def test_nobody_listening_is_a_clear_error(self):
        """With nobody listening, the simulator exits 2 with 'cannot connect' and no traceback."""
        out, err, code = yield run_cli("simulate", "mes", "--to", f"127.0.0.1:{free_port()}", "--count", "1")
        self.assertEqual(code, 2)
        self.assertIn("cannot connect", err.decode())
        self.assertNotIn("Traceback", err.decode())
