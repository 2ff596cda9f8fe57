"""Monthly partitions of the process tables (schema/117) and the retention job that drops
expired months after summarising their coils (schema/118, ccl/adapters/storage/partitions.py).
Real PostgreSQL, fixed dates: nothing here depends on today's date."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
import time
from datetime import date

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ccl.adapters.storage import partitions
from ccl.adapters.storage.migrations import migrate
from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.application.store_telegrams import row_for
from ccl.domain.journal_record import TELEGRAM, JournalRecord
from ccl.domain.partitions import expired
from ccl.domain.telegrams import encode
from ccl.orchestrator.alerts import AlertRules
from ccl.orchestrator.monitor import Orchestrator
from tests.support.database import DatabaseTestCase, admin_dsn, fresh_database, query
from tests.support.mes import LAYOUTS
from tests.support.orchestrator import settings as orchestrator_settings

UTC = datetime.timezone.utc
PARTITIONED = ("tc_4001_cut", "tc_4002_wpd", "tc_4003_speed", "rejected_telegrams")


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def speed(seq: int, sent_at: datetime.datetime, mpm: int = 100) -> bytes:
    return encode(LAYOUTS, "4003", {"line_speed": mpm}, sequence_no=seq, sent_at=sent_at)


def cut(seq: int, sent_at: datetime.datetime, coil: str) -> bytes:
    return encode(LAYOUTS, "4001", {"coil_number": coil, "cut_mode": 1, "winding_length": 1000},
                  sequence_no=seq, sent_at=sent_at)


def record(number: int, raw: bytes, received_at: datetime.datetime) -> JournalRecord:
    return JournalRecord(number=number, kind=TELEGRAM, received_at=received_at.timestamp(), peer="127.0.0.1:5",
                         listener="mes", raw=raw)


def where(dsn: str, table: str) -> list[tuple]:
    return query(dsn, f"SELECT sequence_no, tableoid::regclass::text FROM {table} ORDER BY sequence_no, id")


class DomainTests(SynchronousTestCase):
    def test_expired_keeps_the_current_month_and_the_months_before(self):
        """Keeping 24 months on 2026-03-10 keeps 2024-04 .. 2026-03; 0 keeps everything; odd names are left."""
        names = ["t_p202403", "t_p202404", "t_p202603", "t_default", "t_p202312"]
        self.assertEqual([e.partition for e in expired("t", names, date(2026, 3, 10), 24)], ["t_p202312", "t_p202403"])
        self.assertEqual(expired("t", names, date(2026, 3, 10), 0), [])
        self.assertEqual([e.partition for e in expired("t", names, date(2026, 3, 31), 1)],
                         ["t_p202312", "t_p202403", "t_p202404"])


class WritePathTests(TestCase):
    @defer.inlineCallbacks
    def test_rows_go_to_their_month_and_a_retransmission_across_the_month_end_is_stored_once(self):
        """A speed sample sent at 23:59:59 UTC on 31 March goes to the March partition, the next one
        to April; the same telegram received again in April (by either write path) is skipped."""
        dsn = fresh_database(self)
        connection = psycopg2.connect(dsn)
        with connection:
            partitions.ensure_partitions(connection, date(2026, 3, 1), 1)
        connection.close()
        last_of_march = speed(1, at("2026-03-31T23:59:59"))
        first = [record(1, last_of_march, at("2026-04-01T00:00:01")),
                 record(2, speed(2, at("2026-04-01T00:00:02")), at("2026-04-01T00:00:03")),
                 record(3, cut(3, at("2026-03-31T23:59:58"), "C0001"), at("2026-04-01T00:00:04"))]
        copy_store, json_store = (PostgresProcessStore(reactor, dsn, stage_from=n) for n in (1, 10 ** 6))
        for store in (copy_store, json_store):
            store.start()
            self.addCleanup(store.stop)
        outcome = yield copy_store.apply("j", [row_for(r, LAYOUTS) for r in first], 3)
        self.assertEqual(outcome.duplicates, {})
        # The same telegram again, five minutes into April: by COPY, then as JSON.
        for number, store in ((4, copy_store), (5, json_store)):
            again = record(number, last_of_march, at("2026-04-01T00:05:00"))
            outcome = yield store.apply("j", [row_for(again, LAYOUTS)], number)
            self.assertEqual(outcome.duplicates, {"4003": 1})
        self.assertEqual(where(dsn, "tc_4003_speed"), [(1, "tc_4003_speed_p202603"), (2, "tc_4003_speed_p202604")])
        self.assertEqual(where(dsn, "tc_4001_cut"), [(3, "tc_4001_cut_p202603")])
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4003_speed_default")[0][0], 0)
        self.assertEqual(query(dsn, "SELECT count(*) FROM forward_outbox WHERE tc_code = '4003'")[0][0], 2)


class DefaultPartitionTests(DatabaseTestCase, TestCase):
    def setUp(self):
        self.s = orchestrator_settings(self)
        self.monitor = Orchestrator(reactor, [], self.s)
        self.addCleanup(self.monitor.close_logs)
        return self.start_database()

    def open_alerts(self):
        return self.sql("SELECT rule, subject FROM alerts WHERE cleared_at IS NULL")

    @defer.inlineCallbacks
    def test_a_row_without_its_month_lands_in_default_raises_the_alert_and_moves_out(self):
        """A speed sample of a month with no partition is stored (in the DEFAULT partition), the
        orchestrator raises partition.default; making that month's partition moves the row into
        it and the alert clears. The orchestrator's first evaluation also makes partitions ahead."""
        self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                 " VALUES ('CCL1', 7, '2019-05-05T12:00:00Z', '2019-05-05T12:00:01Z', 100, 'x')")
        self.assertEqual(where(self.dsn, "tc_4003_speed"), [(7, "tc_4003_speed_default")])
        self.assertEqual(partitions.default_rows(self.connection), {"tc_4003_speed": 1})
        rules = AlertRules(reactor, self.monitor, self.db, self.s, {})
        changes = yield rules.evaluate()
        self.assertIn(("raised", "partition.default", "tc_4003_speed"), changes)
        self.assertIn(("partition.default", "tc_4003_speed"), self.open_alerts())
        today = datetime.datetime.fromtimestamp(reactor.seconds(), UTC).strftime("%Y%m")
        self.assertIn(f"tc_4003_speed_p{today}", partitions.partitions_of(self.connection, "tc_4003_speed"))
        self.sql("SELECT ccl_month_partition('tc_4003_speed', '2019-05-20')")
        self.assertEqual(where(self.dsn, "tc_4003_speed"), [(7, "tc_4003_speed_p201905")])
        changes = yield rules.evaluate()
        self.assertIn(("cleared", "partition.default", "tc_4003_speed"), changes)
        self.assertNotIn(("partition.default", "tc_4003_speed"), self.open_alerts())


    @defer.inlineCallbacks
    def test_a_failed_partition_run_leaves_the_alert_rules_working(self):
        """When making partitions ahead fails (here: the function is gone), the failure is logged,
        the database rules still run (partition.default is raised), and it is not tried again at
        once (an hour later it is)."""
        clock = task.Clock()
        clock.advance(datetime.datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp())
        self.sql("DROP FUNCTION ccl_month_partition(regclass, date)")
        self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                 " VALUES ('CCL1', 7, '2019-05-05T12:00:00Z', '2019-05-05T12:00:01Z', 100, 'x')")
        rules = AlertRules(clock, self.monitor, self.db, self.s, {})
        changes = yield rules.evaluate()
        self.assertIn(("raised", "partition.default", "tc_4003_speed"), changes)
        self.assertEqual(len(self.flushLoggedErrors(psycopg2.errors.UndefinedFunction)), 1)
        clock.advance(60)
        yield rules.evaluate()
        self.assertEqual(self.flushLoggedErrors(psycopg2.errors.UndefinedFunction), [])
        clock.advance(3600)
        yield rules.evaluate()
        self.assertEqual(len(self.flushLoggedErrors(psycopg2.errors.UndefinedFunction)), 1)


class RetentionTests(DatabaseTestCase, TestCase):
    def setUp(self):
        return self.start_database()

    def arrange(self):
        partitions.ensure_partitions(self.connection, date(2023, 12, 1), 27)  # 2023-12 .. 2026-03
        for seq, sent in enumerate(["2024-01-15T10:00:00Z", "2024-02-10T10:00:00Z", "2024-04-01T00:00:00Z",
                                    "2026-03-01T10:00:00Z"], start=1):
            self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                     " VALUES ('CCL1', %s, %s, %s, 100, 'x')", (seq, sent, sent))
            self.sql("INSERT INTO rejected_telegrams (received_at, listener, result_code, reason, raw)"
                     " VALUES (%s, 'mes', '12', 'test', 'x')", (sent,))
        self.sql("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, length_value,"
                 " raw) VALUES ('CCL1', 1, '2024-01-14T10:00:00Z', '2024-01-14T10:00:00Z', 'OLD1', 1200, 'x')")
        for seq, (coil, sent, winding) in enumerate([("OLD1", "2024-01-15T11:00:00Z", 600),
                                                     ("OLD1", "2024-01-15T12:00:00Z", 590),
                                                     ("NEW1", "2026-03-01T12:00:00Z", 800)], start=1):
            self.sql("INSERT INTO tc_4001_cut (line_code, sequence_no, sent_at, received_at, coil_number,"
                     " winding_length, raw) VALUES ('CCL1', %s, %s, %s, %s, %s, 'x')", (seq, sent, sent, coil, winding))
        for defect_type, severity, status in [("scratch", "high", "new"), ("scratch", "low", "confirmed"),
                                              ("dent", "low", "new"), ("stain", "high", "false_positive")]:
            self.sql("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                     " detection_time, review_status) VALUES ('OLD1', %s, 0.9, %s, '2024-01-15T11:30:00Z', %s)",
                     (defect_type, severity, status))
        # Two passes of OLD1 graded; the later one overridden by an operator: that grade stands.
        self.sql("INSERT INTO coil_grades (tracked_coil, coil_number, grade, disposition, rule_version, reasons, facts,"
                 " graded_by, graded_at) VALUES ('OLD1', 'OLD1', 'B', 'hold', (SELECT min(version) FROM"
                 " grading_rule_books), '[]', '{}', 'completion', '2024-01-16T00:00:00Z')")
        self.sql("INSERT INTO coil_grades (tracked_coil, coil_number, grade, disposition, rule_version, reasons, facts,"
                 " graded_by, graded_at, override_grade, override_disposition, overridden_by, overridden_at)"
                 " VALUES ('OLD1#2', 'OLD1', 'A', 'ship', (SELECT min(version) FROM grading_rule_books), '[]', '{}',"
                 " 'completion', '2024-01-17T00:00:00Z', 'C', 'downgrade', 'kim', '2024-01-18T00:00:00Z')")

    def counts(self) -> dict:
        return {table: self.sql(f"SELECT count(*) FROM {table}")[0][0] for table in PARTITIONED}

    def test_dry_run_drops_nothing(self):
        """--dry-run lists the expired months and leaves every row, partition and summary as it was."""
        self.arrange()
        before = self.counts()
        report = partitions.run_retention(self.connection, date(2026, 3, 10), {"process": 24}, actor="test",
                                          dry_run=True)
        self.assertEqual(sorted({e.month for e in report.expired}), [date(2023, 12, 1), date(2024, 1, 1),
                                                                     date(2024, 2, 1), date(2024, 3, 1)])
        self.assertEqual(len(report.expired), 16)
        self.assertEqual(report.dropped, ())
        self.assertEqual(self.counts(), before)
        self.assertIn("tc_4003_speed_p202401", partitions.partitions_of(self.connection, "tc_4003_speed"))
        self.assertEqual(self.sql("SELECT count(*) FROM coil_summaries")[0][0], 0)
        self.assertEqual(self.sql("SELECT count(*) FROM audit_logs WHERE action = 'retention.run'")[0][0], 0)

    def test_expired_months_are_dropped_and_their_coils_summarised(self):
        """Keeping 24 months on 2026-03-10 drops 2023-12 .. 2024-03 of every process table (whole
        partitions), keeps 2024-04 on, writes OLD1's summary first (lengths, cuts, defects by type and
        severity without the false positive, its grade) and audits the run."""
        self.arrange()
        now = at("2026-03-10T03:00:00")
        report = partitions.run_retention(self.connection, date(2026, 3, 10), {"process": 24}, actor="test", now=now)
        self.assertEqual(len(report.dropped), 16)
        self.assertEqual(self.counts(), {"tc_4001_cut": 1, "tc_4002_wpd": 0, "tc_4003_speed": 2,
                                         "rejected_telegrams": 2})
        self.assertEqual(self.sql("SELECT sequence_no FROM tc_4003_speed ORDER BY 1"), [(3,), (4,)])
        for table in PARTITIONED:
            names = partitions.partitions_of(self.connection, table)
            self.assertNotIn(f"{table}_p202403", names)
            self.assertIn(f"{table}_p202404", names)
            self.assertIn(f"{table}_default", names)
        self.assertEqual(self.sql("SELECT count(*) FROM pg_class WHERE relname = 'tc_4003_speed_p202401'")[0][0], 0)
        summary = self.sql(
            "SELECT coil_number, first_seen_at, last_seen_at, mes_length_m, cut_pieces, winding_length_m, defects,"
            " defects_by_type, defects_by_severity, grade, disposition, summarized_at FROM coil_summaries")
        self.assertEqual(summary, [("OLD1", at("2024-01-14T10:00:00"), at("2024-01-15T12:00:00"), 1200, 2, 1190, 3,
                                    {"scratch": 2, "dent": 1}, {"high": 1, "low": 2}, "C", "downgrade", now)])
        self.assertEqual(report.summarized, 1)
        self.assertEqual(self.sql("SELECT actor, details->'dropped' FROM audit_logs WHERE action = 'retention.run'"),
                         [("test", list(report.dropped))])
        # Nothing more to do: a second run drops nothing and audits nothing.
        again = partitions.run_retention(self.connection, date(2026, 3, 10), {"process": 24}, actor="test")
        self.assertEqual(again.dropped, ())
        self.assertEqual(self.sql("SELECT count(*) FROM audit_logs WHERE action = 'retention.run'")[0][0], 1)
        self.assertEqual(self.sql("SELECT cut_pieces, defects FROM coil_summaries WHERE coil_number = 'OLD1'"),
                         [(2, 3)])

    def test_keeping_for_ever_drops_nothing(self):
        self.arrange()
        before = self.counts()
        report = partitions.run_retention(self.connection, date(2026, 3, 10), {"process": 0}, actor="test")
        self.assertEqual((report.expired, report.dropped), ((), ()))
        self.assertEqual(self.counts(), before)


class DefectRetentionTests(DatabaseTestCase, TestCase):
    """[retention] defect_months: defect_detections is partitioned by month of receipt
    (schema/123); an expired month goes whole, with the rows of other tables that belong to its
    defects, after its coils are summarised."""

    def setUp(self):
        return self.start_database()

    def defect(self, coil: str, when: str, severity: str = "high") -> int:
        [(defect_id,)] = self.sql(
            "INSERT INTO defect_detections (event_id, coil_number, defect_type, confidence_score, severity,"
            " detection_time, received_at) VALUES (gen_random_uuid(), %s, 'scratch', 0.9, %s, %s, %s) RETURNING id",
            (coil, severity, when, when))
        self.sql("INSERT INTO defect_event_ids (event_id, defect_id) SELECT event_id, id FROM defect_detections"
                 " WHERE id = %s", (defect_id,))
        self.sql("INSERT INTO tracking_defects (defect_id, camera_id, detected_at, time_source, status, box_coil,"
                 " model_version, computed_at) VALUES (%s, 'top', %s, 'box', 'no_coil', %s, 1, %s)",
                 (defect_id, when, coil, when))
        self.sql("INSERT INTO defect_reviews (defect_id, action, previous_status, from_type, to_type, reviewed_by)"
                 " VALUES (%s, 'confirm', 'new', 'scratch', 'scratch', 'kim')", (defect_id,))
        return defect_id

    def arrange(self) -> tuple[list[int], list[int]]:
        partitions.ensure_partitions(self.connection, date(2023, 12, 1), 27)  # 2023-12 .. 2026-03
        old = [self.defect("OLD9", "2024-01-15T11:30:00Z"), self.defect("OLD9", "2024-01-31T23:59:59Z", "low")]
        new = [self.defect("NEW9", "2024-04-01T00:00:00Z"), self.defect("NEW9", "2026-03-01T10:00:00Z")]
        [(series,)] = self.sql("INSERT INTO periodic_series (tracked_coil, coil_number, surface, defect_type, pitch_m,"
                               " cross_mm, start_m, end_m, members, expected) VALUES ('OLD9', 'OLD9', 'top', 'scratch',"
                               " 1.5, 10, 0, 3, 2, 2) RETURNING id")
        for defect_id in old[:1] + new[:1]:
            self.sql("INSERT INTO periodic_members (defect_id, series_id) VALUES (%s, %s)", (defect_id, series))
        return old, new

    def belonging(self) -> dict[str, list[int]]:
        return {table: [row[0] for row in self.sql(f"SELECT defect_id FROM {table} ORDER BY 1")]
                for table, _column in partitions.DEPENDENTS["defect_detections"]}

    def test_an_expired_month_of_defects_goes_with_what_belongs_to_it(self):
        """Keeping 24 months of defects on 2026-03-10 drops defect_detections 2023-12 .. 2024-03; the
        tracking rows, reviews, periodic members and event ids of its two defects go with them and
        nobody else's; the coil OLD9, known only by its defects, keeps its counts in coil_summaries;
        the process tables (kept for ever here) lose nothing; the run is audited."""
        old, new = self.arrange()
        self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                 " VALUES ('CCL1', 1, '2024-01-15T10:00:00Z', '2024-01-15T10:00:00Z', 100, 'x')")
        now = at("2026-03-10T03:00:00")
        report = partitions.run_retention(self.connection, date(2026, 3, 10), {"process": 0, "defects": 24},
                                          actor="test", now=now)
        self.assertEqual(report.dropped, ("defect_detections_p202312", "defect_detections_p202401",
                                          "defect_detections_p202402", "defect_detections_p202403"))
        self.assertEqual(self.sql("SELECT id FROM defect_detections ORDER BY id"), [(i,) for i in new])
        belonging = self.belonging()
        self.assertEqual(belonging, {"tracking_defects": new, "periodic_members": new[:1],
                                     "defect_reviews": new, "defect_event_ids": new})
        self.assertEqual(self.sql("SELECT count(*) FROM tc_4003_speed")[0][0], 1)
        self.assertEqual(self.sql("SELECT coil_number, defects, defects_by_type, defects_by_severity FROM coil_summaries"),
                         [("OLD9", 2, {"scratch": 2}, {"high": 1, "low": 1})])
        self.assertEqual(self.sql("SELECT details->'dropped' FROM audit_logs WHERE action = 'retention.run'"),
                         [(list(report.dropped),)])

    def test_a_failed_drop_keeps_the_month_and_what_belongs_to_it(self):
        """When a drop fails midway (here: another session holds a lock on the partition and the
        run's lock_timeout ends its wait), the transaction rolls back whole: every defect and every
        row belonging to one is still there."""
        old, new = self.arrange()
        before = self.belonging()
        blocker = psycopg2.connect(self.dsn)
        self.addCleanup(blocker.close)
        blocker.cursor().execute("LOCK TABLE defect_detections_p202401 IN ACCESS SHARE MODE")
        retention = psycopg2.connect(self.dsn)  # one transaction, as the CLI and the orchestrator run it
        self.addCleanup(retention.close)
        with self.assertRaises(psycopg2.errors.LockNotAvailable), retention:
            with retention.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '200ms'")
            partitions.run_retention(retention, date(2026, 3, 10), {"process": 0, "defects": 24}, actor="test")
        blocker.rollback()
        self.assertEqual(self.sql("SELECT id FROM defect_detections ORDER BY id"), [(i,) for i in sorted(old + new)])
        self.assertEqual(self.belonging(), before)
        self.assertIn("defect_detections_p202401", partitions.partitions_of(self.connection, "defect_detections"))


class ConcurrentCreationTests(SynchronousTestCase):
    def test_two_sessions_make_the_same_partition(self):
        """A second session asking for a partition the first is making (uncommitted) waits for it
        and then returns its name instead of failing."""
        dsn = fresh_database(self)
        first, second = psycopg2.connect(dsn), psycopg2.connect(dsn)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        first.cursor().execute("SELECT ccl_month_partition('tc_4003_speed', '2030-02-01')")
        outcome = {}

        def make():
            try:
                with second, second.cursor() as cursor:
                    cursor.execute("SELECT ccl_month_partition('tc_4003_speed', '2030-02-01')")
                    outcome["name"] = cursor.fetchone()[0]
            except psycopg2.Error as error:
                outcome["error"] = error

        waiter = threading.Thread(target=make)
        waiter.start()
        while not query(dsn, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                             " AND query LIKE '%%ccl_month_partition%%'"):
            time.sleep(0.05)  # until the second session waits for the first's lock
        first.commit()
        waiter.join()
        self.assertEqual(outcome, {"name": "tc_4003_speed_p203002"})


class CommandTests(SynchronousTestCase):
    def ccl(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k.startswith("CCL_TEST")}
        env["CCL_PATHS_VAR"] = os.path.abspath(self.mktemp())
        return subprocess.run([sys.executable, "-m", "ccl", "retention", "run", *args, "--dsn", self.dsn],
                              capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))

    def test_dry_run_lists_and_the_run_drops(self):
        """`ccl retention run --dry-run` names the expired month (2001-01, expired whatever today is)
        and drops nothing; `ccl retention run` drops it, audited with the OS user."""
        self.dsn = fresh_database(self)
        query(self.dsn, "SELECT ccl_month_partition('tc_4003_speed', '2001-01-01')")
        query(self.dsn, "INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                        " VALUES ('CCL1', 1, '2001-01-02T00:00:00Z', '2001-01-02T00:00:00Z', 'x')")
        result = self.ccl("--dry-run")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("would drop tc_4003_speed_p200101 (tc_4003_speed, 2001-01)", result.stdout)
        self.assertEqual(query(self.dsn, "SELECT count(*) FROM tc_4003_speed_p200101"), [(1,)])
        result = self.ccl()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("dropped tc_4003_speed_p200101 (tc_4003_speed, 2001-01)", result.stdout)
        self.assertEqual(query(self.dsn, "SELECT to_regclass('tc_4003_speed_p200101') IS NULL"), [(True,)])
        [(actor,)] = query(self.dsn, "SELECT actor FROM audit_logs WHERE action = 'retention.run'")
        self.assertTrue(actor.startswith("cli:"), actor)


class MigrationTests(SynchronousTestCase):
    def empty_database(self) -> str:
        name = f"partitions_{id(self)}"
        admin = psycopg2.connect(admin_dsn())
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        admin.close()

        def drop():
            connection = psycopg2.connect(admin_dsn())
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            connection.close()

        self.addCleanup(drop)
        return admin_dsn().replace("dbname=postgres", f"dbname={name}")

    def test_a_populated_database_is_converted_without_losing_a_row(self):
        """The schema before 117 with rows over several months (and a row 'now'), migrated: every
        row is still there, in its month's partition, ids go on from the old sequence, and the
        retransmission key still refuses a second copy."""
        dsn = self.empty_database()
        migrate(dsn, below=117)
        self.assertEqual(query(dsn, "SELECT relkind FROM pg_class WHERE relname = 'tc_4003_speed'"), [("r",)])
        sent = ["2025-11-30T23:59:59Z", "2025-12-01T00:00:00Z", "2026-01-15T08:00:00Z"]
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            for n in range(300):
                when = sent[n % 3]
                cursor.execute("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed,"
                               " raw) VALUES ('CCL1', %s, %s, %s, %s, %s)", (n, when, when, n, b"raw%d" % n))
                cursor.execute("INSERT INTO tc_4001_cut (line_code, sequence_no, sent_at, received_at, coil_number,"
                               " raw) VALUES ('CCL1', %s, %s, %s, 'C1', 'x')", (n, when, when))
                cursor.execute("INSERT INTO tc_4002_wpd (line_code, sequence_no, sent_at, received_at, coil_number,"
                               " raw) VALUES ('CCL1', %s, %s, %s, 'C1', 'x')", (n, when, when))
                cursor.execute("INSERT INTO rejected_telegrams (received_at, result_code, reason, raw)"
                               " VALUES (%s, '12', 'test', 'x')", (when,))
            cursor.execute("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                           " VALUES ('CCL1', 9999, now(), now(), 'now')")
        rows = {t: query(dsn, f"SELECT to_jsonb(x) FROM {t} x ORDER BY id") for t in PARTITIONED}
        applied = migrate(dsn)
        self.assertEqual([m.version for m in applied if m.version in (117, 118)], [117, 118])
        for table in PARTITIONED:
            self.assertEqual(query(dsn, "SELECT relkind FROM pg_class WHERE relname = %s", (table,)), [("p",)])
            self.assertEqual(query(dsn, f"SELECT to_jsonb(x) FROM {table} x ORDER BY id"), rows[table], table)
            self.assertEqual(query(dsn, f"SELECT count(*) FROM {table}_default")[0][0], 0, table)
        self.assertEqual(query(dsn, "SELECT tableoid::regclass::text, count(*) FROM tc_4003_speed"
                                    " WHERE sequence_no < 9999 GROUP BY 1 ORDER BY 1"),
                         [("tc_4003_speed_p202511", 100), ("tc_4003_speed_p202512", 100),
                          ("tc_4003_speed_p202601", 100)])
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                           " VALUES ('CCL1', 0, %s, now(), %s) ON CONFLICT (line_code, sequence_no, sent_at, raw)"
                           " DO NOTHING RETURNING id", (sent[0], b"raw0"))
            self.assertEqual(cursor.fetchall(), [])
            cursor.execute("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                           " VALUES ('CCL1', 1, %s, now(), 'new') RETURNING id", (sent[0],))
            self.assertGreater(cursor.fetchone()[0], rows["tc_4003_speed"][-1][0]["id"])
            self.assertRaises(psycopg2.IntegrityError, cursor.execute,
                              "INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, raw)"
                              " VALUES ('CCL1', 1, %s, now(), 'new')", (sent[0],))

    def test_defects_are_converted_with_their_event_ids_and_what_refers_to_them(self):
        """The schema before 123 with defects received over several months, event ids, tracking
        rows and reviews, migrated: every defect is still there in its month's partition, every
        event id is in defect_event_ids (a stored one is refused again), the rows that referred to
        a defect still name it and carry its received_at, ids go on from the old sequence, and the
        statistics triggers still mark."""
        dsn = self.empty_database()
        migrate(dsn, below=123)
        self.assertEqual(query(dsn, "SELECT relkind FROM pg_class WHERE relname = 'defect_detections'"), [("r",)])
        detected = ["2025-11-30T23:59:59Z", "2025-12-01T00:00:00Z", "2026-01-15T08:00:00Z"]
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            for n in range(90):
                cursor.execute("INSERT INTO defect_detections (event_id, coil_number, defect_type, confidence_score,"
                               " severity, detection_time, received_at) VALUES (CASE WHEN %s THEN gen_random_uuid()"
                               " END, 'C1', 'scratch', 0.5, 'low', %s, %s) RETURNING id",
                               (n % 2 == 0, detected[n % 3], detected[n % 3]))
                defect_id = cursor.fetchone()[0]
                cursor.execute("INSERT INTO defect_reviews (defect_id, action, previous_status, from_type, to_type,"
                               " reviewed_by) VALUES (%s, 'confirm', 'new', 'scratch', 'scratch', 'kim')", (defect_id,))
                cursor.execute("INSERT INTO tracking_defects (defect_id, camera_id, detected_at, time_source, status,"
                               " box_coil, model_version, computed_at) VALUES (%s, 'top', %s, 'box', 'no_coil', 'C1',"
                               " 1, now())", (defect_id, detected[n % 3]))
        defects = query(dsn, "SELECT to_jsonb(x) FROM defect_detections x ORDER BY id")
        refs = query(dsn, "SELECT defect_id FROM defect_reviews UNION ALL SELECT defect_id FROM tracking_defects"
                          " ORDER BY 1")
        applied = migrate(dsn)
        self.assertEqual([m.version for m in applied][:1], [123])
        self.assertEqual(query(dsn, "SELECT relkind FROM pg_class WHERE relname = 'defect_detections'"), [("p",)])
        self.assertEqual(query(dsn, "SELECT to_jsonb(x) FROM defect_detections x ORDER BY id"), defects)
        self.assertEqual(query(dsn, "SELECT tableoid::regclass::text, count(*) FROM defect_detections GROUP BY 1"
                                    " ORDER BY 1"),
                         [("defect_detections_p202511", 30), ("defect_detections_p202512", 30),
                          ("defect_detections_p202601", 30)])
        self.assertEqual(query(dsn, "SELECT count(*), count(*) FILTER (WHERE d.event_id = e.event_id)"
                                    " FROM defect_event_ids e JOIN defect_detections d ON d.id = e.defect_id"), [(45, 45)])
        self.assertEqual(query(dsn, "SELECT defect_id FROM defect_reviews UNION ALL SELECT defect_id FROM"
                                    " tracking_defects ORDER BY 1"), refs)
        for table in ("defect_reviews", "tracking_defects"):
            self.assertEqual(query(dsn, f"SELECT count(*) FROM {table} x JOIN defect_detections d"
                                        " ON d.id = x.defect_id AND d.received_at = x.defect_received_at"), [(90,)])
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                           " detection_time) VALUES ('C1', 'dent', 0.5, 'low', '2025-12-02T00:00:00Z') RETURNING id")
            self.assertGreater(cursor.fetchone()[0], defects[-1][0]["id"])
            cursor.execute("SELECT count(*) FROM ui_stats_dirty WHERE day = '2025-12-02'")
            self.assertEqual(cursor.fetchone()[0], 1)
            self.assertRaises(psycopg2.IntegrityError, cursor.execute,
                              "INSERT INTO defect_event_ids (event_id, defect_id)"
                              " SELECT event_id, 0 FROM defect_detections WHERE event_id IS NOT NULL LIMIT 1")
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            # A review naming no stored defect is refused (the trigger finds no received_at).
            self.assertRaises(psycopg2.errors.NotNullViolation, cursor.execute,
                              "INSERT INTO defect_reviews (defect_id, action, previous_status, from_type, to_type,"
                              " reviewed_by) VALUES (-1, 'confirm', 'new', 'scratch', 'scratch', 'kim')")
        # JIT is off for the database: every new session starts without it.
        self.assertEqual(query(dsn, "SHOW jit"), [("off",)])
