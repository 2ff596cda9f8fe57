"""A dead letter sent again (the use case, as the UI calls it) is picked up by the running
forwarder: a real ccl-mes process forwarding to the 고기원 simulator, and an in-process
forwarding service for where the entry goes in its channel's order."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.postgres import Database
from ccl.adapters.storage.refusals import PgDeadLetters
from ccl.application.refusals import DeadLetters
from ccl.domain.refusals import NotDead
from ccl.ports import Actor
from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, schedule
from tests import test_gokiwon_end_to_end as end_to_end
from tests.test_gokiwon_forwarding import Harness, insert, states, wait_until


@defer.inlineCallbacks
def use_case(testcase, dsn: str):
    """DeadLetters over its own pool, as the UI process has it."""
    db = Database(reactor, dsn, 1)
    testcase.addCleanup(db.close)
    yield db.start()
    return DeadLetters(PgDeadLetters(db), LAYOUTS, reactor)


def outbox(dsn: str) -> dict[int, tuple]:
    return {row[0]: row[1:] for row in query(
        dsn, "SELECT sequence_no, state, attempts, resent_count FROM forward_outbox")}


class ResendToRunningMesTests(TestCase):
    """ccl-mes as a real twistd process; the re-send comes from this (another) process."""

    timeout = 120
    # The set-up of the end-to-end tests (not their tests): simulator, ports, the child's environment.
    setUp = end_to_end.EndToEndProcessTests.setUp
    spawn = end_to_end.EndToEndProcessTests.spawn
    connect_when_up = end_to_end.EndToEndProcessTests.connect_when_up

    def environment(self):
        env = end_to_end.EndToEndProcessTests.environment(self)
        env["CCL_GOKIWON_POLL_INTERVAL"] = "0.2"
        return env

    @defer.inlineCallbacks
    def test_a_resent_dead_letter_goes_out_exactly_once_more_and_is_delivered(self):
        """A dead letter re-sent from another process is picked up by the running ccl-mes and
        delivered, once."""
        self.sim.nak_rate = 1.0  # 고기원 refuses everything: three dead letters
        process, output = self.spawn()
        client = yield self.connect_when_up(output)
        telegrams = [schedule(n, coil=f"H{n:06d}") for n in (1, 2, 3)]
        client.transport.write(b"".join(telegrams))
        yield client.wait_replies(3)
        yield wait_until(lambda: [s for s, *_ in outbox(self.dsn).values()] == ["refused"] * 3, "three dead letters",
                         timeout=60)
        self.sim.nak_rate = 0.0  # 고기원 fixed
        letters = yield use_case(self, self.dsn)
        entry_id = query(self.dsn, "SELECT id FROM forward_outbox WHERE sequence_no = 2")[0][0]
        entry = yield letters.resend(entry_id, Actor("kim"))
        self.assertEqual(entry.state, "pending")
        yield wait_until(lambda: outbox(self.dsn)[2] == ("delivered", 2, 1), "the re-sent entry delivered", timeout=60)
        # Something sent after it is delivered too, and by then several polls have passed:
        # neither the re-sent entry nor the other dead letters went out again.
        client.transport.write(schedule(4, coil="H000004"))
        yield client.wait_replies(4)
        yield wait_until(lambda: outbox(self.dsn).get(4, ("",))[0] == "delivered", "a new telegram delivered",
                         timeout=60)
        yield task.deferLater(reactor, 1.0, lambda: None)  # five more polls
        arrivals = [r.raw for r in self.sim.received if r.channel == "schedule"]
        self.assertEqual(arrivals, telegrams + [telegrams[1], schedule(4, coil="H000004")])
        self.assertEqual(outbox(self.dsn), {1: ("refused", 1, 0), 2: ("delivered", 2, 1), 3: ("refused", 1, 0),
                                            4: ("delivered", 1, 0)})
        yield self.assertFailure(letters.resend(entry_id, Actor("kim")), NotDead)


class ResendOrderTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_a_resent_entry_goes_out_ahead_of_the_waiting_backlog(self):
        """A re-sent dead letter goes out ahead of the backlog that waited while 고기원 was away."""
        dsn = fresh_database(self)
        h = Harness(self, dsn)
        yield h.start_sim()
        yield h.start_service()  # its safety-net poll every 0.3 s
        h.sim.nak_rate = 1.0
        dead = insert(dsn, "speed", [1])
        h.pipeline.wake(["speed"])
        yield wait_until(lambda: states(dsn) == {"refused": 1}, "a dead letter")
        h.sim.nak_rate = 0.0
        yield h.sim.stop()  # 고기원 away: what comes now waits
        yield wait_until(lambda: not h.service.forwarders["speed"].connected, "disconnect seen")
        backlog = insert(dsn, "speed", range(2, 22), start_value=2)
        h.pipeline.wake(["speed"])
        letters = yield use_case(self, dsn)
        yield letters.resend(dead[0][0], Actor("kim"))
        yield wait_until(lambda: h.service.forwarders["speed"].queued == 21, "the re-sent entry loaded")
        yield h.sim.listen(h.ports)
        yield wait_until(lambda: states(dsn) == {"delivered": 21}, "all delivered")
        raws = h.received("speed")
        self.assertEqual(raws, [dead[0][1], dead[0][1]] + [raw for _, raw in backlog])
