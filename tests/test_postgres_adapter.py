"""The txpostgres adapter against a real PostgreSQL that goes away and comes back."""

import json

import psycopg2

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.postgres import UNAVAILABLE, Database, audit, retrying
from tests.support.cluster import private_cluster
from tests.support.database import fresh_database, query
from tests.support.waiting import wait_for


class DatabaseTests(TestCase):
    def started(self, dsn: str, size: int) -> defer.Deferred:
        """A Database on ``dsn``, closed after the test; fires with it once connected."""
        db = Database(reactor, dsn, size=size)
        self.addCleanup(db.close)
        return db.start().addCallback(lambda _: db)

    @defer.inlineCallbacks
    def test_query_and_audit(self):
        """Queries take parameters (Korean text too), and audit() writes one audit_logs row with its JSON details."""
        dsn = fresh_database(self)
        db = yield self.started(dsn, size=2)
        rows = yield db.runQuery("SELECT %s::text", ("한글",))
        self.assertEqual(rows, [("한글",)])
        yield audit(db, actor="tester", action="probe", target="x", result="ok", details={"k": "값"})
        stored = query(dsn, "SELECT actor, action, target, result, details FROM audit_logs")
        self.assertEqual(stored, [("tester", "probe", "x", "ok", {"k": "값"})])

    @defer.inlineCallbacks
    def test_a_transaction_whose_connection_dies_fails_as_unavailable(self):
        """A transaction whose connection the server kills fails as unavailable, and the pool serves the next caller."""
        dsn = fresh_database(self)
        db = yield self.started(dsn, size=1)

        def doomed(cursor):
            # The server ends this very connection mid-transaction: the ROLLBACK fails too.
            return cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        failure = yield self.assertFailure(db.runInteraction(doomed), *UNAVAILABLE)
        self.assertIsInstance(failure, UNAVAILABLE)
        self.flushLoggedErrors(*UNAVAILABLE)
        # and the pool comes back for the next caller
        rows = yield retrying(reactor, lambda: db.runQuery("SELECT 1"), what="probe")
        self.assertEqual(rows, [(1,)])

    @defer.inlineCallbacks
    def test_survives_a_restart_and_keeps_listening(self):
        """Queries fail as unavailable while PostgreSQL is down; after its restart they work and LISTEN is renewed."""
        cluster, dsn = private_cluster(self)
        db = yield self.started(dsn, size=2)
        events = []
        yield db.listen("ccl_events", events.append)
        yield db.runQuery("SELECT pg_notify('ccl_events', %s)", (json.dumps({"n": 1}),))
        yield wait_for(lambda: events == [{"n": 1}])

        cluster.stop()
        failure = yield self.assertFailure(db.runQuery("SELECT 1"), *UNAVAILABLE)
        self.assertIsInstance(failure, UNAVAILABLE)
        cluster.start(fast=True)
        rows = yield retrying(reactor, lambda: db.runQuery("SELECT 2"), what="probe")
        self.assertEqual(rows, [(2,)])

        # LISTEN is re-issued after the listener reconnects.
        def notify_and_check():
            query(dsn, "SELECT pg_notify('ccl_events', '{\"n\": 2}')")
            return {"n": 2} in events

        yield wait_for(notify_and_check, interval=0.3)
        # txpostgres lets the reactor log the server's disconnect of idle connections.
        self.flushLoggedErrors(psycopg2.OperationalError)

    @defer.inlineCallbacks
    def test_start_while_database_down_connects_later(self):
        """Started while PostgreSQL is down, the pool waits and connects once it is up."""
        cluster, dsn = private_cluster(self)
        cluster.stop()
        db = Database(reactor, dsn, size=1)
        self.addCleanup(db.close)
        ready = db.start()
        self.assertFalse(ready.called)
        yield task.deferLater(reactor, 0.5, lambda: None)
        cluster.start(fast=True)
        yield ready
        rows = yield retrying(reactor, lambda: db.runQuery("SELECT 3"))
        self.assertEqual(rows, [(3,)])
