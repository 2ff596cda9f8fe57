"""The hot standby: streaming replication on two throw-away clusters, promotion, and services
that find the new primary by themselves through a multi-host DSN."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.localdb import LocalCluster, LocalDatabaseError, free_port
from ccl.adapters.storage.postgres import Database, retrying
from ccl.adapters.storage.standby import allow_standby, multi_host_dsn, parse_host_port, promote, read_password, replication_status
from ccl.adapters.storage.sync_pool import SyncPool
from ccl.ports import StoreUnavailable
from tests.support.cluster import private_cluster
from tests.support.standby import PASSWORD, primary_and_standby, scalar, streaming
from tests.support.waiting import wait_for
from tests.test_gokiwon_end_to_end import expected_by_channel, first_arrivals, forwarding_to_simulator, production_run
from tests.support.mes import connect
from tests.support.database import query

ROOT = Path(__file__).resolve().parent.parent


class DecisionTests(TestCase):
    def test_primary_is_host_with_an_optional_port(self):
        self.assertEqual(parse_host_port("db1.plant"), ("db1.plant", 5432))
        self.assertEqual(parse_host_port("10.0.0.5:5433"), ("10.0.0.5", 5433))
        self.assertEqual(parse_host_port("[fd00::5]:6000"), ("fd00::5", 6000))
        for bad in ("", ":5432", "db:0", "db:x", "a:1:2"):
            self.assertRaises(LocalDatabaseError, parse_host_port, bad)

    def test_no_default_replication_password(self):
        path = self.mktemp()
        with open(path, "w") as file:
            file.write("short\n")
        self.assertRaises(LocalDatabaseError, read_password, path)
        self.assertRaises(LocalDatabaseError, read_password, None)
        with open(path, "w") as file:
            file.write("a-long-enough-secret\n")
        self.assertEqual(read_password(path), "a-long-enough-secret")

    def test_multi_host_dsn_names_every_server_and_asks_for_the_primary(self):
        dsn = multi_host_dsn([("a", 5432), ("b", 5433)], dbname="ccl", user="ccl")
        self.assertEqual(dsn, "host=a,b port=5432,5433 dbname=ccl user=ccl target_session_attrs=read-write")
        params = psycopg2.extensions.parse_dsn(dsn)
        self.assertEqual((params["host"], params["port"]), ("a,b", "5432,5433"))


class StandbyTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_standby_streams_reports_its_lag_and_promotes(self):
        primary, standby, dsn = primary_and_standby(self)
        yield streaming(primary)
        scalar(primary.superuser_dsn(), "CREATE TABLE replicated (n int); INSERT INTO replicated VALUES (7) RETURNING n")
        # Synchronous: the commit returned once the standby had it; replay follows at once.
        yield wait_for(lambda: _count(standby.superuser_dsn(), "replicated") == 1, what="replayed on the standby")

        on_primary = replication_status(primary.superuser_dsn())
        self.assertEqual(on_primary.role, "primary")
        self.assertEqual([(s[0], s[2], s[3]) for s in on_primary.standbys], [("ccl_standby", "streaming", "sync")])
        on_standby = replication_status(standby.superuser_dsn())
        self.assertEqual((on_standby.role, on_standby.receiver), ("standby", "streaming"))
        self.assertEqual(on_standby.lag_bytes, 0)
        self.assertRaises(psycopg2.Error, scalar, standby.superuser_dsn(), "INSERT INTO replicated VALUES (8) RETURNING n")

        primary.stop("immediate")
        promote(standby)
        self.assertEqual(replication_status(standby.superuser_dsn()).role, "primary")
        self.assertEqual(scalar(dsn, "INSERT INTO replicated VALUES (8) RETURNING n"), 8)
        self.assertRaises(LocalDatabaseError, promote, standby)  # a primary has nothing to promote

    @defer.inlineCallbacks
    def test_services_reconnect_to_the_promoted_standby_by_themselves(self):
        """Database (txpostgres) and SyncPool (psycopg2) on the multi-host DSN: after the
        primary dies and the standby is promoted, a reconnect finds the new primary."""
        primary, standby, dsn = primary_and_standby(self)
        yield streaming(primary)
        scalar(primary.superuser_dsn(), "CREATE TABLE written (who text, n int) ; SELECT 1")
        db = Database(reactor, dsn, size=2)
        self.addCleanup(db.close)
        yield db.start()
        pool = SyncPool(reactor, dsn, size=1)
        pool.start()
        self.addCleanup(pool.stop)

        def insert_sync(connection, n):
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO written VALUES ('sync', %s)", (n,))

        yield db.runOperation("INSERT INTO written VALUES ('async', 1)")
        yield pool.run(insert_sync, 1)
        self.assertEqual(scalar(dsn, "SELECT inet_server_port()"), primary.port)

        primary.stop("immediate")
        with self.assertRaises(StoreUnavailable):
            yield pool.run(insert_sync, 2)  # the dead connection is dropped ...
        reactor.callLater(1.0, promote, standby)
        yield retrying(reactor, lambda: db.runOperation("INSERT INTO written VALUES ('async', 2)"))
        yield _until_stored(lambda: pool.run(insert_sync, 2))  # ... and the next one finds the new primary
        self.assertEqual(scalar(dsn, "SELECT inet_server_port()"), standby.port)
        self.assertEqual(query(standby.superuser_dsn(), "SELECT who, n FROM written ORDER BY who, n"),
                         [("async", 1), ("async", 2), ("sync", 1), ("sync", 2)])
        self.flushLoggedErrors(psycopg2.OperationalError, psycopg2.InterfaceError)


class MesFailoverTests(TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def test_primary_killed_mid_stream_promote_nothing_lost_nothing_twice(self):
        """MES telegrams flow into ccl-mes (multi-host DSN) and on to 고기원; the primary dies
        mid-stream, the standby is promoted: every ACKed telegram is stored once and every
        forward reached 고기원 once, in order."""
        primary, standby, dsn = primary_and_standby(self)
        yield streaming(primary)
        sim, mes, forwarding = yield forwarding_to_simulator(self, dsn)
        client = yield connect(self, mes)
        telegrams = production_run(1, 400)
        for start in range(0, 200, 20):
            client.transport.write(b"".join(telegrams[start:start + 20]))
            yield client.wait_replies(start + 20)
        primary.stop("immediate")  # mid-stream: the writer and the forwarders lose the database
        client.transport.write(b"".join(telegrams[200:300]))
        yield client.wait_replies(300)  # the journal ACKs on: it ACKs after its own fsync
        promote(standby)
        client.transport.write(b"".join(telegrams[300:]))
        yield client.wait_replies(400)
        self.assertEqual({r.result_code for r in client.replies}, {"00"})

        forwarded = expected_by_channel(telegrams)
        total = sum(len(raws) for raws in forwarded.values())
        yield wait_for(lambda: query(standby.superuser_dsn(), "SELECT count(*) FROM forward_outbox"
                                     " WHERE state = 'delivered'") == [(total,)], timeout=90, what="all delivered")
        for channel, raws in forwarded.items():
            self.assertEqual(first_arrivals(sim, channel), raws)
        self.assertEqual([r.raw[:10] for r in sim.received if r.duplicate], [])
        stored = query(standby.superuser_dsn(),
                       "SELECT (SELECT count(*) FROM tc_4000_schedule) + (SELECT count(*) FROM tc_4001_cut)"
                       " + (SELECT count(*) FROM tc_4002_wpd) + (SELECT count(*) FROM tc_4003_speed)")
        self.assertEqual(stored, [(400,)])
        self.flushLoggedErrors(psycopg2.OperationalError, psycopg2.InterfaceError)


def _count(dsn: str, table: str) -> int:
    try:
        return scalar(dsn, f"SELECT count(*) FROM {table}")
    except psycopg2.Error:
        return 0


@defer.inlineCallbacks
def _until_stored(operation, attempts: int = 100):
    for _ in range(attempts):
        try:
            result = yield operation()
            return result
        except StoreUnavailable:
            yield task.deferLater(reactor, 0.2, lambda: None)
    raise AssertionError("never stored")


class CommandLineTests(TestCase):
    """``ccl standby`` as the operator runs it, on the second machine's [paths] var."""

    timeout = 180

    def ccl(self, env: dict, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ccl", "standby", *argv], capture_output=True, text=True,
                              env=env, cwd=str(ROOT))

    def test_setup_status_promote(self):
        primary, _ = private_cluster(self)
        allow_standby(primary, PASSWORD, network="127.0.0.1/32")
        var = Path(tempfile.mkdtemp(prefix="ccl-standby-var-"))
        os.chmod(var, 0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_PATHS_VAR=str(var), CCL_DATABASE_LOCAL_PORT=str(free_port()))
        self.addCleanup(lambda: (LocalCluster(var / "pgdata", int(env["CCL_DATABASE_LOCAL_PORT"])).destroy(),
                                 shutil.rmtree(var, ignore_errors=True)))

        refused = self.ccl(env, "setup", "--primary", f"127.0.0.1:{primary.port}")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("no replication password", refused.stderr)  # there is no default
        self.assertFalse((var / "pgdata").exists())

        (var / "replication.password").write_text(PASSWORD + "\n")
        env["CCL_STANDBY_PASSWORD_FILE"] = str(var / "replication.password")
        made = self.ccl(env, "setup", "--primary", f"127.0.0.1:{primary.port}")
        self.assertEqual(made.returncode, 0, made.stderr)
        self.assertTrue((var / "pgdata" / "standby.signal").exists())
        status = self.ccl(env, "status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("role: standby", status.stdout)
        again = self.ccl(env, "setup", "--primary", f"127.0.0.1:{primary.port}")
        self.assertEqual(again.returncode, 1)
        self.assertIn("already holds a cluster", again.stderr)

        primary.stop("immediate")
        promoted = self.ccl(env, "promote")
        self.assertEqual(promoted.returncode, 0, promoted.stderr)
        self.assertIn("role: primary", self.ccl(env, "status").stdout)


class ReadFromStandbyTests(TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_heavy_pages_read_from_the_standby_and_go_on_while_the_primary_is_down(self):
        """[database] read_dsn with prefer-standby: statistics are read from the standby (its
        replicated figures, not the other database's) and still answer with the primary gone."""
        import datetime

        from ccl.adapters.web.ui.settings import UISettings
        from ccl.config import load_config
        from ccl.services.ui import compose_ui
        from tests.support.database import fresh_database

        primary, standby, _ = primary_and_standby(self, synchronous=False)
        yield streaming(primary)
        scalar(primary.superuser_dsn(), "INSERT INTO ui_stats_days VALUES ('2026-12-04');"
               " INSERT INTO ui_stats_cells (day, defect_type, n) VALUES ('2026-12-04', 'scratch', 7) RETURNING n")
        read_dsn = multi_host_dsn([("127.0.0.1", standby.port), ("127.0.0.1", primary.port)], target="prefer-standby",
                                  user="postgres", dbname="postgres")
        yield wait_for(lambda: _count(standby.superuser_dsn(), "ui_stats_cells") == 1, what="replicated")
        dsn = fresh_database(self)  # everything else: a database without those figures
        config = load_config({"CCL_DATABASE_DSN": dsn, "CCL_DATABASE_READ_DSN": read_dsn,
                              "CCL_PATHS_VAR": self.mktemp()})
        db, read_db = Database(reactor, dsn, size=1), Database(reactor, read_dsn, size=1)
        for each in (db, read_db):
            self.addCleanup(each.close)
            yield each.start()
        ui = compose_ui(reactor, UISettings.from_config(config), db, read_db=read_db)
        self.addCleanup(ui.orchestrator.close)
        self.assertEqual(scalar(read_dsn, "SELECT pg_is_in_recovery()"), True)

        primary.stop("immediate")
        day = datetime.date(2026, 12, 4)
        figures = yield ui.uses.statistics.statistics(day, day)
        self.assertEqual((figures["total"], figures["pareto"][0]["defect_type"]), (7, "scratch"))
