from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.adapters.storage.migrations import discover, migrate
from tests.support.database import fresh_database, query

TABLES = {
    "tc_4000_schedule", "tc_4001_cut", "tc_4002_wpd", "tc_4003_speed", "rejected_telegrams", "forward_outbox",
    "journal_progress", "defect_detections", "ai_models", "ai_model_metrics", "images", "users", "sessions",
    "audit_logs", "system_settings", "ingest_tokens", "alerts", "link_status", "schema_migrations",
}


class MigrationTests(SynchronousTestCase):
    def test_every_table_exists(self):
        """A migrated database has every table the services use."""
        dsn = fresh_database(self)
        rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        self.assertTrue(TABLES <= {r[0] for r in rows}, TABLES - {r[0] for r in rows})

    def test_running_again_applies_nothing(self):
        """Migrating an up-to-date database applies nothing, and every known migration is recorded in order."""
        dsn = fresh_database(self)
        self.assertEqual(migrate(dsn), [])
        versions = [r[0] for r in query(dsn, "SELECT version FROM schema_migrations ORDER BY version")]
        self.assertEqual(versions, [m.version for m in discover()])

    def test_new_migration_applied_in_order(self):
        """A new numbered migration is applied alone, after those already applied."""
        dsn = fresh_database(self)
        directory = Path(self.mktemp())
        directory.mkdir()
        for migration in discover():
            (directory / migration.path.name).write_text(migration.path.read_text())
        (directory / "999_probe.sql").write_text("CREATE TABLE probe (id int);")
        applied = migrate(dsn, directory)
        self.assertEqual([m.version for m in applied], [999])
        self.assertEqual(query(dsn, "SELECT count(*) FROM probe"), [(0,)])

    def test_failed_migration_leaves_nothing_half_done(self):
        """A failing migration leaves neither its first statements nor a record of itself behind."""
        dsn = fresh_database(self)
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "998_broken.sql").write_text("CREATE TABLE half (id int); SELECT * FROM no_such_table;")
        import psycopg2

        self.assertRaises(psycopg2.Error, migrate, dsn, directory)
        self.assertEqual(query(dsn, "SELECT to_regclass('half')"), [(None,)])
        self.assertEqual(query(dsn, "SELECT count(*) FROM schema_migrations WHERE version = 998"), [(0,)])

    def test_duplicate_numbers_refused(self):
        """Two migration files with the same number are refused."""
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "005_a.sql").write_text("")
        (directory / "005_b.sql").write_text("")
        self.assertRaises(ValueError, discover, directory)
