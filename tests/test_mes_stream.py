"""Framing over a real socket: every split point of a mixed stream reads the same."""

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from tests.support.database import fresh_database, query
from tests.support.mes import alive, connect, cut, schedule, speed, start_service, wait_for, wpd

STREAM = [schedule(1, "H477707", "이알텍㈜"), speed(2), b"#garbage#", wpd(3), alive(4), cut(5), speed(6)]
EXPECTED = [("4000", 1, "00"), ("4003", 2, "00"), ("0000", 0, "13"), ("4002", 3, "00"), ("4001", 5, "00"),
            ("4003", 6, "00")]


class SplitPointTests(TestCase):
    @defer.inlineCallbacks
    def test_every_split_point_of_a_mixed_stream_gives_the_same_replies_and_rows(self):
        """A stream split at any byte gets the same replies; resent telegrams are stored once."""
        dsn = fresh_database(self)
        # fsync off: this test is about framing, and it opens hundreds of connections.
        service = yield start_service(self, dsn, journal_fsync=False)
        data = b"".join(STREAM)

        @defer.inlineCallbacks
        def one(split):
            client = yield connect(self, service)
            client.transport.write(data[:split])
            # Let the first part go out as its own segment before the rest.
            yield task.deferLater(reactor, 0.01, lambda: None)
            client.transport.write(data[split:])
            yield client.wait_replies(len(EXPECTED))
            client.transport.loseConnection()
            yield client.closed
            return [(r.acked_tc_code, r.acked_sequence_no, r.result_code) for r in client.replies]

        splits = list(range(1, len(data)))
        results = {}
        for start in range(0, len(splits), 40):
            wave = splits[start:start + 40]
            replies = yield defer.gatherResults([one(split) for split in wave])
            results.update(zip(wave, replies))
        wrong = {split: got for split, got in results.items() if got != EXPECTED}
        self.assertEqual(wrong, {})
        self.assertEqual(len(results), len(data) - 1)

        # Every connection was a retransmission of the same telegrams: stored once each.
        yield wait_for(lambda: service.writer.backlog == 0
                       and service.writer.applied_upto == service.journal.last_durable, timeout=60)
        self.assertEqual(query(dsn, "SELECT (SELECT count(*) FROM tc_4000_schedule), (SELECT count(*) FROM tc_4001_cut),"
                                    " (SELECT count(*) FROM tc_4002_wpd), (SELECT count(*) FROM tc_4003_speed)"),
                         [(1, 1, 1, 2)])
        self.assertEqual(query(dsn, "SELECT count(*), count(DISTINCT raw), min(encode(raw, 'escape')) "
                                    "FROM rejected_telegrams"), [(len(data) - 1, 1, "#garbage#")])
