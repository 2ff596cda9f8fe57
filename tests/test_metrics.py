from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.metrics import Registry, parse_text


class MetricsTests(SynchronousTestCase):
    def test_render_and_parse_round_trip(self):
        """Counters and gauges (labels with quotes too) render as Prometheus text that parses back the same."""
        registry = Registry()
        received = registry.counter("telegrams_received_total", "Telegrams received")
        received.inc(tc="4000")
        received.inc(2, tc="4003")
        registry.gauge("journal_backlog", "Entries not yet in PostgreSQL", read=lambda: 7)
        peers = registry.gauge("peer_connected", "Connected")
        peers.set(1, peer='10.0.0.1:"x"')
        text = registry.render()
        self.assertIn("# TYPE ccl_telegrams_received_total counter", text)
        samples = parse_text(text)
        self.assertIn(("ccl_telegrams_received_total", {"tc": "4000"}, 1.0), samples)
        self.assertIn(("ccl_telegrams_received_total", {"tc": "4003"}, 2.0), samples)
        self.assertIn(("ccl_journal_backlog", {}, 7.0), samples)
        self.assertIn(("ccl_peer_connected", {"peer": '10.0.0.1:"x"'}, 1.0), samples)

    def test_counter_never_goes_down_and_names_are_unique(self):
        """A counter refuses a negative step, a name is registered once, and a malformed metric name is refused."""
        registry = Registry()
        counter = registry.counter("a_total", "a")
        self.assertRaises(ValueError, counter.inc, -1)
        self.assertRaises(ValueError, registry.counter, "a_total", "again")
        self.assertRaises(ValueError, registry.gauge, "bad name", "x")
