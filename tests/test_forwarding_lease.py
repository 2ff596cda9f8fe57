"""Two ccl-mes on one database (two plant servers): both receive and store, only the holder
of the forwarding lease (a PostgreSQL advisory lock) forwards to 고기원, and the other takes
over when it goes, continuing from the outbox in order."""

from __future__ import annotations

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.gokiwon.service import GokiwonSettings
from ccl.adapters.gokiwon.simulator import GokiwonSimulator
from ccl.adapters.storage.forwarding_lease import AdvisoryLease
from ccl.adapters.storage.localdb import free_port
from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, connect, start_service, wait_for
from tests.test_gokiwon_end_to_end import first_arrivals, production_run


class LeaseTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_one_holder_and_the_other_takes_over_when_its_connection_ends(self):
        dsn = fresh_database(self)
        events = []
        first, second = AdvisoryLease(reactor, dsn, interval=0.1), AdvisoryLease(reactor, dsn, interval=0.1)
        first.start(lambda: events.append("first gained"), lambda: events.append("first lost"))
        self.addCleanup(first.stop)
        yield wait_for(lambda: first.held, what="the first holds it")
        second.start(lambda: events.append("second gained"), lambda: events.append("second lost"))
        self.addCleanup(second.stop)
        yield task.deferLater(reactor, 1.0, lambda: None)  # ten tries
        self.assertFalse(second.held)
        yield first.stop()
        yield wait_for(lambda: second.held, what="the second takes over")
        self.assertEqual(events, ["first gained", "first lost", "second gained"])

    @defer.inlineCallbacks
    def test_the_holder_whose_session_is_killed_stops_at_once(self):
        dsn = fresh_database(self)
        events = []
        lease = AdvisoryLease(reactor, dsn, interval=0.1)
        lease.start(lambda: events.append("gained"), lambda: events.append("lost"))
        self.addCleanup(lease.stop)
        yield wait_for(lambda: lease.held, what="held")
        query(dsn, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
        yield wait_for(lambda: events[-1:] == ["lost"] or len(events) > 2, what="lost")
        yield wait_for(lambda: lease.held, what="taken again on a new connection")
        self.assertEqual(events, ["gained", "lost", "gained"])
        self.flushLoggedErrors(psycopg2.OperationalError, psycopg2.InterfaceError)


class TwoServersTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def start_pair(self, dsn: str):
        self.sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0)
        ports = yield self.sim.listen({"schedule": 0, "wpd": 0, "speed": 0})
        self.addCleanup(self.sim.shutdown)
        services = []
        ack_ports = []
        for _ in range(2):
            ack_port = free_port()
            ack_ports.append(("127.0.0.1", ack_port))
            settings = GokiwonSettings(host="127.0.0.1", ports=ports, ack_listen=f"tcp:{ack_port}:interface=127.0.0.1",
                                       retry_initial=0.1, retry_max=0.5, poll_interval=1, lease=True,
                                       lease_interval=0.2)
            services.append((yield start_service(self, dsn, gokiwon=settings)))
        self.sim.start_acks(ack_ports)
        return services

    def holder(self, services):
        leading = [mes for mes in services if mes.forwarding.leading]
        return leading[0] if len(leading) == 1 else None

    @defer.inlineCallbacks
    def test_only_the_holder_forwards_and_the_other_takes_over_in_order(self):
        dsn = fresh_database(self)
        services = yield self.start_pair(dsn)
        yield wait_for(lambda: self.holder(services), what="one holder")
        holder = self.holder(services)
        other = services[1] if holder is services[0] else services[0]
        yield wait_for(lambda: all(f.connected for f in holder.forwarding.forwarders.values()), what="connected")
        self.assertFalse(any(f.connected for f in other.forwarding.forwarders.values()))
        self.assertEqual(len(self.sim.live), 3)  # one connection per channel: the holder's
        self.assertEqual(other.forwarding.health()["lease"], "standing by")

        # Both receive (the MES switches target): the same telegram at both is stored once.
        to_holder = yield connect(self, holder)
        to_other = yield connect(self, other)
        telegrams = production_run(1, 300)
        to_holder.transport.write(b"".join(telegrams[:100]))
        to_other.transport.write(b"".join(telegrams[90:200]))  # 90-99 at both
        yield to_holder.wait_replies(100)
        yield to_other.wait_replies(110)
        yield wait_for(lambda: all(mes.writer.applied_upto == mes.journal.last_durable for mes in services),
                       what="both writers committed")
        forwarded_so_far = query(dsn, "SELECT count(*) FROM forward_outbox")[0][0]
        yield wait_for(lambda: query(dsn, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'")
                       == [(forwarded_so_far,)], what="delivered by the holder")
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4001_cut"), [(50,)])  # stored once

        # The holder goes mid-stream: the other takes over and goes on from the outbox.
        to_other.transport.write(b"".join(telegrams[200:300]))
        yield wait_for(lambda: any(f.in_flight for f in holder.forwarding.forwarders.values())
                       or query(dsn, "SELECT count(*) FROM forward_outbox WHERE state <> 'delivered'") == [(0,)],
                       what="forwarding under way")
        yield holder.service.stopService()
        yield wait_for(lambda: other.forwarding.leading, what="the other takes over", timeout=30)
        yield to_other.wait_replies(210)
        total = query(dsn, "SELECT count(*) FROM forward_outbox")[0][0]
        yield wait_for(lambda: query(dsn, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'")
                       == [(total,)], what="all delivered", timeout=60)
        for channel in ("schedule", "wpd", "speed"):
            in_outbox = [bytes(raw) for (raw,) in query(dsn, "SELECT raw FROM forward_outbox WHERE channel = %s"
                                                            " ORDER BY id", (channel,))]
            self.assertEqual(first_arrivals(self.sim, channel), in_outbox)
        # At-least-once across the hand-over: only what was sent and not yet answered when
        # the holder went may come twice (고기원 de-duplicates by TC and sequence number).
        twice = [r for r in self.sim.received if r.duplicate]
        self.assertLessEqual(len(twice), 3 * holder.forwarding.settings.window)
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4000_schedule") + query(
            dsn, "SELECT count(*) FROM tc_4003_speed"), [(75,), (75,)])
