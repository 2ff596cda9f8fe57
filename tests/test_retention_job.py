"""The orchestrator's daily retention run ([retention] automatic), against a real database."""

from __future__ import annotations

import datetime
from datetime import date

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from ccl.adapters.storage import partitions
from ccl.adapters.storage.localdb import free_port
from ccl.config import load_config
from ccl.orchestrator.app import retention_job
from tests.support.database import DatabaseTestCase
from tests.support.orchestrator import environ

UTC = datetime.timezone.utc


def clock_at(text: str) -> task.Clock:
    clock = task.Clock()
    clock.advance(datetime.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
    return clock


class RetentionJobTests(DatabaseTestCase, TestCase):
    def setUp(self):
        return self.start_database()

    def job(self, clock, dsn: str | None = None, **settings: str):
        env = environ(self) | {f"CCL_RETENTION_{key.upper()}": value for key, value in settings.items()}
        job, pool = retention_job(load_config(env), reactor, dsn or self.dsn, clock=clock)
        if pool is not None:
            pool.start()
            self.addCleanup(pool.stop)
        return job

    def speed_rows(self) -> list[tuple]:
        return self.sql("SELECT sequence_no FROM tc_4003_speed ORDER BY 1")

    def arrange(self) -> None:
        partitions.ensure_partitions(self.connection, date(2024, 1, 1), 27)  # 2024-01 .. 2026-04
        for seq, sent in [(1, "2024-01-15T10:00:00Z"), (2, "2024-03-31T23:59:00Z"), (3, "2024-04-01T00:00:00Z"),
                          (4, "2026-03-01T10:00:00Z")]:
            self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                     " VALUES ('CCL1', %s, %s, %s, 100, 'x')", (seq, sent, sent))

    def retention_audits(self) -> list[tuple]:
        return self.sql("SELECT actor, details->'dropped' FROM audit_logs WHERE action = 'retention.run' ORDER BY id")

    @defer.inlineCallbacks
    def test_expired_months_are_dropped_once_a_day_and_audited_as_the_orchestrator(self):
        """On 2026-03-10 with 24 months kept, the job drops the 2024-01 .. 2024-03 partitions (their
        rows go, 2024-04 on stays) and audits it with the actor 'orchestrator'. A partition of an
        expired month made again later that day is left until the next UTC date, when it goes too."""
        self.arrange()
        clock = clock_at("2026-03-10T12:00:00")
        job = self.job(clock)
        yield job.tick()
        self.assertEqual(self.speed_rows(), [(3,), (4,)])
        names = partitions.partitions_of(self.connection, "tc_4003_speed")
        self.assertNotIn("tc_4003_speed_p202403", names)
        self.assertIn("tc_4003_speed_p202404", names)
        audits = self.retention_audits()
        self.assertEqual([actor for actor, _ in audits], ["orchestrator"])
        self.assertIn("tc_4003_speed_p202401", audits[0][1])
        self.assertEqual(job.done_on, date(2026, 3, 10))

        self.sql("SELECT ccl_month_partition('tc_4003_speed', '2024-02-01')")
        clock.advance(3600)
        yield job.tick()
        self.assertIn("tc_4003_speed_p202402", partitions.partitions_of(self.connection, "tc_4003_speed"))
        self.assertEqual(len(self.retention_audits()), 1)

        clock.advance(12 * 3600)  # 2026-03-11 01:00 UTC
        yield job.tick()
        self.assertNotIn("tc_4003_speed_p202402", partitions.partitions_of(self.connection, "tc_4003_speed"))
        self.assertEqual(len(self.retention_audits()), 2)
        self.assertEqual(job.done_on, date(2026, 3, 11))

    @defer.inlineCallbacks
    def test_a_day_with_nothing_expired_drops_and_audits_nothing(self):
        """Keeping 24 months on 2025-06-01, nothing of 2024-01 on has expired: every row and partition
        stays, no audit row is written, and the day counts as done."""
        self.arrange()
        job = self.job(clock_at("2025-06-01T00:30:00"))
        yield job.tick()
        self.assertEqual(self.speed_rows(), [(1,), (2,), (3,), (4,)])
        self.assertEqual(self.retention_audits(), [])
        self.assertEqual(job.done_on, date(2025, 6, 1))

    @defer.inlineCallbacks
    def test_process_months_zero_keeps_everything(self):
        """[retention] process_months = 0 and defect_months = 0 (keep for ever): the daily run
        drops nothing."""
        self.arrange()
        job = self.job(clock_at("2030-01-01T12:00:00"), process_months="0", defect_months="0")
        yield job.tick()
        self.assertEqual(self.speed_rows(), [(1,), (2,), (3,), (4,)])
        self.assertEqual(self.retention_audits(), [])

    def test_automatic_false_makes_no_job(self):
        """[retention] automatic = false: the orchestrator builds no retention job at all (only
        `ccl retention run` drops months then)."""
        self.assertIsNone(self.job(task.Clock(), automatic="false"))

    @defer.inlineCallbacks
    def test_a_database_away_is_tried_again_and_logs_no_error(self):
        """While the database cannot be reached the job logs that it will try again (no error, so
        nothing alarming in orchestrator.log at start-up, before PostgreSQL is up), the day does not
        count as done, and the loop tries again after its interval."""
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        clock = clock_at("2026-03-10T12:00:00")
        job = self.job(clock, dsn=f"host=127.0.0.1 port={free_port()} dbname=nothing connect_timeout=2")
        yield job.tick()
        self.assertIsNone(job.done_on)
        tries = [e for e in events if "database unavailable" in e.get("log_format", "")]
        self.assertEqual(len(tries), 1)
        job.start()
        yield job.stop()
        self.assertEqual(len([e for e in events if "database unavailable" in e.get("log_format", "")]), 2)
        self.assertEqual(self.flushLoggedErrors(), [])
