"""Backups: pgBackRest point-in-time recovery of a throw-away local cluster through `ccl backup`,
the verified incremental image copy, and the backup.stale alert on a clock the test controls.

Each pgBackRest test makes its own cluster (a temp dir, a free port, run as the postgres user
when we are root, like the plant's) and its own backup path; both are removed at clean-up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from ccl.adapters.backup.image_copy import CatalogedImage, ImageCopy
from ccl.adapters.backup.pgbackrest import PgBackRest
from ccl.adapters.storage.image_records import cataloged_images, images_elsewhere
from ccl.adapters.storage.localdb import free_port, local_cluster, setup_local_database
from ccl.adapters.storage.migrations import migrate
from ccl.adapters.storage.postgres import Database
from ccl.config import load_config
from ccl.domain.backup import (
    BackupError,
    StanzaInfo,
    check_target,
    choose_type,
    parse_info,
    parse_target,
    pgbackrest_time,
    staleness,
)
from ccl.orchestrator.alerts import AlertRules
from ccl.orchestrator.backup_watch import BackupWatch
from ccl.orchestrator.monitor import Orchestrator
from tests.support.database import DatabaseTestCase, query
from tests.support.orchestrator import settings as orchestrator_settings

ROOT = Path(__file__).resolve().parent.parent


class LocalSystem:
    """A plant's var/ with its local cluster (set up like `ccl localdb setup`), image root and backup path."""

    def __init__(self, testcase: TestCase):
        self.base = Path(tempfile.mkdtemp(prefix="ccl-backup-"))
        os.chmod(self.base, 0o755)
        testcase.addCleanup(shutil.rmtree, self.base, ignore_errors=True)
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") or k.startswith("CCL_TEST")}
        self.environ.update(CCL_PATHS_VAR=str(self.base / "var"), CCL_PATHS_LOGS=str(self.base / "logs"),
                            CCL_IMAGES_ROOT=str(self.base / "images"), CCL_DATABASE_DSN="",
                            CCL_DATABASE_LOCAL_PORT=str(free_port()), CCL_BACKUP_ARCHIVE_TIMEOUT="60")
        self.config = load_config(self.environ)
        self.cluster = local_cluster(self.config)
        testcase.addCleanup(self.cluster.destroy)
        self.dsn = setup_local_database(self.config)
        migrate(self.dsn)
        self.repo = self.base / "backup"
        self.backrest = PgBackRest.of(self.config, self.cluster)

    def ccl(self, *args: str) -> tuple[int, str]:
        """Run `ccl ARGS` as the operator would; its exit code and what it printed (stdout + stderr)."""
        result = subprocess.run([sys.executable, "-m", "ccl", *args], env=self.environ, cwd=ROOT,
                                capture_output=True, text=True)
        return result.returncode, result.stdout + result.stderr

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        return query(self.dsn, statement, params)

    def speeds(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                     " VALUES ('CCL1', %s, now(), now(), 100, 'x')", (n,))

    def stored_speeds(self) -> list[int]:
        return [row[0] for row in self.sql("SELECT sequence_no FROM tc_4003_speed ORDER BY sequence_no")]


class PointInTimeRestoreTests(TestCase):
    def test_restore_to_a_time_brings_back_exactly_the_data_of_that_time(self):
        """Backup, more rows, note T, more rows, the data directory destroyed: `ccl backup restore
        --to T` gives back every row committed before T and none after; a time before the first
        backup or one that cannot be read is refused with a message and changes nothing."""
        system = LocalSystem(self)
        code, out = system.ccl("backup", "setup", "--repo", str(system.repo))
        self.assertEqual(code, 0, out)
        self.assertIn("WAL archiving works", out)
        system.speeds(1, 3)
        before_first_backup = system.sql("SELECT clock_timestamp()")[0][0]
        code, out = system.ccl("backup", "run", "--type", "full")
        self.assertEqual(code, 0, out)
        self.assertIn("images: 0 copied", out)

        # A time can be restored from the whole second after the backup's end on.
        restorable = system.backrest.info().earliest_restorable()
        while system.sql("SELECT clock_timestamp()")[0][0] < restorable:
            time.sleep(0.1)
        system.speeds(4, 3)
        target = system.sql("SELECT clock_timestamp()")[0][0]
        system.speeds(7, 3)
        system.backrest.run("check")  # the WAL with rows 7-9 archived: a clean cut after T, not a lost tail

        code, out = system.ccl("backup", "list")
        self.assertEqual(code, 0, out)
        self.assertIn("full", out)
        self.assertIn("restorable: from", out)

        # Never under a running orchestrator: it would restart the database it runs as its child.
        stand_in = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "twistd"], stdin=subprocess.PIPE)
        self.addCleanup(stand_in.wait)
        self.addCleanup(stand_in.stdin.close)
        (system.base / "var" / "orchestrator.pid").write_text(f"{stand_in.pid}\n")
        code, out = system.ccl("backup", "restore", "--to", target.isoformat())
        self.assertEqual(code, 1)
        self.assertIn(f"the orchestrator (pid {stand_in.pid}) is running", out)
        self.assertIn("scripts/stop-services.sh", out)
        self.assertEqual(system.stored_speeds(), list(range(1, 10)))
        (system.base / "var" / "orchestrator.pid").unlink()

        # The machine is lost: data directory and pgBackRest configuration; the backup path survives.
        system.cluster.stop("immediate")
        shutil.rmtree(system.cluster.datadir)
        shutil.rmtree(system.backrest.state_dir)
        code, out = system.ccl("backup", "restore", "--to", target.isoformat())
        self.assertEqual(code, 1)
        self.assertIn("`ccl backup restore --repo PATH`", out)

        code, out = system.ccl("backup", "restore", "--to", "yesterday at noon", "--repo", str(system.repo))
        self.assertEqual(code, 1)
        self.assertIn("cannot read the time 'yesterday at noon'", out)
        code, out = system.ccl("backup", "restore", "--to", before_first_backup.isoformat())
        self.assertEqual(code, 1)
        self.assertIn("is before the first backup", out)
        self.assertFalse(system.cluster.exists())

        code, out = system.ccl("backup", "restore", "--to", target.isoformat(), "--repo", str(system.repo))
        self.assertEqual(code, 0, out)
        self.assertIn("database restored and running", out)
        self.assertEqual(system.stored_speeds(), [1, 2, 3, 4, 5, 6])
        self.assertEqual(system.sql("SELECT pg_is_in_recovery()"), [(False,)])
        self.assertEqual(system.sql("SELECT action, result FROM audit_logs WHERE action = 'backup.restore'"),
                         [("backup.restore", "ok")])

        # The restored database goes on being archived and backed up, on its new timeline.
        code, out = system.ccl("backup", "run", "--type", "full", "--no-images")
        self.assertEqual(code, 0, out)


class MisuseTests(TestCase):
    def test_every_command_before_setup_says_to_set_up(self):
        system = LocalSystem(self)
        for args in (("run",), ("list",), ("images",), ("restore",), ("restore", "--to", "2026-12-04 10:00")):
            code, out = system.ccl("backup", *args)
            self.assertEqual(code, 1, args)
            self.assertIn("backups are not set up yet", out)
            self.assertIn("ccl backup setup --repo PATH", out)

    def test_setup_refuses_a_repo_the_database_user_cannot_write(self):
        """A read-only backup path, a path under a file, no --repo at all, a stopped database."""
        system = LocalSystem(self)
        locked = system.base / "locked"
        (locked / "pgbackrest").mkdir(parents=True)
        (locked / "pgbackrest" / "someone-elses").write_text("x")
        os.chmod(locked / "pgbackrest", 0o555)
        code, out = system.ccl("backup", "setup", "--repo", str(locked))
        self.assertEqual(code, 1)
        self.assertIn("is not writable by the database's user", out)
        self.assertFalse(system.backrest.is_set_up())

        (system.base / "a-file").write_text("x")
        code, out = system.ccl("backup", "setup", "--repo", str(system.base / "a-file" / "repo"))
        self.assertEqual(code, 1)
        self.assertIn("cannot create the backup repository", out)

        code, out = system.ccl("backup", "setup")
        self.assertEqual(code, 1)
        self.assertIn("setup needs --repo PATH", out)

        system.cluster.stop()
        code, out = system.ccl("backup", "setup", "--repo", str(system.repo))
        self.assertEqual(code, 1)
        self.assertIn("is not running", out)
        self.assertFalse(system.backrest.is_set_up())


class BackupStaleAlertTests(TestCase):
    @defer.inlineCallbacks
    def test_raised_and_cleared_by_the_age_of_the_last_good_backup(self):
        """Set up without a backup: stale. A full backup: cleared. The clock past its end plus
        max_age: raised. A newer differential backup: cleared again."""
        system = LocalSystem(self)
        code, out = system.ccl("backup", "setup", "--repo", str(system.repo))
        self.assertEqual(code, 0, out)
        clock = task.Clock()
        max_age = timedelta(hours=1)
        watch = BackupWatch(clock, system.backrest.info, 300, max_age)
        db = Database(reactor, system.dsn, size=1)
        self.addCleanup(db.close)
        yield db.start()
        monitor = Orchestrator(reactor, [], orchestrator_settings(self))
        self.addCleanup(monitor.close_logs)
        rules = AlertRules(clock, monitor, db, orchestrator_settings(self), {}, backups=watch)

        def open_stale():
            return system.sql("SELECT subject, message FROM alerts WHERE rule = 'backup.stale' AND cleared_at IS NULL")

        yield watch.refresh()
        yield rules.evaluate()
        self.assertEqual(open_stale(), [("database", "there is no good backup of the database yet")])

        system.backrest.run("backup", "--type=full")
        yield watch.refresh()
        first_end = watch.info.last_good().stopped.timestamp()
        clock.advance(first_end + max_age.total_seconds())
        changes = yield rules.evaluate()
        self.assertEqual(changes, [("cleared", "backup.stale", "database")])
        self.assertEqual(open_stale(), [])

        clock.advance(0.5)
        changes = yield rules.evaluate()
        self.assertEqual(changes, [("raised", "backup.stale", "database")])
        [(subject, message)] = open_stale()
        self.assertIn("is 1.0 h old (limit 1 h)", message)

        system.backrest.run("backup", "--type=diff")
        yield watch.refresh()
        self.assertGreater(watch.info.last_good().stopped.timestamp(), first_end)
        changes = yield rules.evaluate()
        self.assertEqual(changes, [("cleared", "backup.stale", "database")])
        self.assertEqual(len(system.sql("SELECT 1 FROM alerts WHERE rule = 'backup.stale'")), 2)


def _image_row(sql, kind: str, filename: str, data: bytes, stored_on: str | None = None) -> None:
    sql("INSERT INTO images (coil_number, kind, filename, path, bytes, width, height, format, sha256, captured_at,"
        " stored_on) VALUES ('C1', %s, %s, %s, %s, 1, 1, 'png', %s, '2026-12-01T00:00:00Z', %s)",
        (kind, filename, f"{kind}/{filename}", len(data), hashlib.sha256(data).hexdigest(), stored_on))


class ImageCopyTests(DatabaseTestCase, TestCase):
    """The copy against the images table of a real database and real files."""

    def setUp(self):
        base = Path(self.mktemp())
        self.source, self.target = base / "images", base / "backup" / "images"
        for kind in ("original", "labeled"):
            (self.source / kind).mkdir(parents=True)
        return self.start_database()

    def store(self, kind: str, filename: str, data: bytes) -> None:
        (self.source / kind / filename).write_bytes(data)
        _image_row(self.sql, kind, filename, data)

    def catalog(self, host: str = "ccl1") -> list[CatalogedImage]:
        connection = psycopg2.connect(self.dsn)
        try:
            return [CatalogedImage(*row) for row in cataloged_images(connection, host)]
        finally:
            connection.close()

    def test_only_this_hosts_images_are_copied_with_two_stores(self):
        """Two plant servers: the copy takes the rows stored on this host (and the older rows without
        a host), and does not report the other host's images as missing from this store."""
        self.store("original", "here.png", b"uploaded to ccl1")
        (self.source / "original" / "old.png").write_bytes(b"from before stored_on")
        _image_row(self.sql, "original", "old.png", b"from before stored_on", stored_on=None)
        self.sql("UPDATE images SET stored_on = 'ccl1' WHERE filename = 'here.png'")
        _image_row(self.sql, "labeled", "there.png", b"uploaded to ccl2, only in its store", stored_on="ccl2")
        report = ImageCopy(self.source, self.target).run(self.catalog("ccl1"))
        self.assertEqual((report.copied, report.missing, report.ok), (2, [], True))
        self.assertEqual(sorted(p.name for p in (self.target / "original").iterdir()),
                         ["here.png", "old.png"])
        connection = psycopg2.connect(self.dsn)
        try:
            self.assertEqual(images_elsewhere(connection, "ccl1"), {"ccl2": 1})
        finally:
            connection.close()
        # On ccl2 the same table names ccl2's image and the old row (which ccl2's store lacks).
        self.assertEqual(sorted(i.filename for i in self.catalog("ccl2")), ["old.png", "there.png"])

    def test_only_new_files_are_copied_each_verified(self):
        for n in range(3):
            self.store("original", f"o{n}.png", os.urandom(3000 + n))
            self.store("labeled", f"l{n}.png", os.urandom(2000 + n))
        first = ImageCopy(self.source, self.target).run(self.catalog())
        self.assertEqual((first.copied, first.already, first.ok), (6, 0, True))
        for kind, name in (("original", "o1.png"), ("labeled", "l2.png")):
            self.assertEqual((self.target / kind / name).read_bytes(), (self.source / kind / name).read_bytes())

        self.store("original", "o3.png", b"new since the last run")
        second = ImageCopy(self.source, self.target).run(self.catalog())
        self.assertEqual((second.copied, second.already), (1, 6))
        self.assertEqual((self.target / "original" / "o3.png").read_bytes(), b"new since the last run")

    def test_a_file_whose_hash_differs_from_the_database_is_reported_not_copied(self):
        self.store("original", "good.png", b"good bytes")
        self.store("original", "rotten.png", b"the bytes the box sent")
        (self.source / "original" / "rotten.png").write_bytes(b"the bytes the disk returns")
        _image_row(self.sql, "labeled", "gone.png", b"deleted by hand")
        report = ImageCopy(self.source, self.target).run(self.catalog())
        self.assertFalse(report.ok)
        self.assertEqual(report.copied, 1)
        [mismatch] = report.mismatched
        self.assertEqual(mismatch.path, self.source / "original" / "rotten.png")
        self.assertEqual(mismatch.expected, hashlib.sha256(b"the bytes the box sent").hexdigest())
        self.assertEqual(mismatch.actual, hashlib.sha256(b"the bytes the disk returns").hexdigest())
        self.assertEqual(report.missing, [self.source / "labeled" / "gone.png"])
        self.assertFalse((self.target / "original" / "rotten.png").exists())
        self.assertEqual(sorted(p.name for p in (self.target / "original").iterdir()), ["good.png"])
        # Reported again on the next run: a mismatch is never recorded as copied.
        again = ImageCopy(self.source, self.target).run(self.catalog())
        self.assertEqual((again.copied, again.already, len(again.mismatched)), (0, 1, 1))

    def test_an_interrupted_copy_continues_where_it_stopped(self):
        """A run stopped after 4 files, with a half-written file and a cut manifest line as a
        killed run leaves them: the next run copies the other 6, each once, and no temp file stays."""
        for n in range(10):
            self.store("original", f"o{n}.png", os.urandom(5000 + n))
        copy = ImageCopy(self.source, self.target)
        first = copy.run(self.catalog(), max_files=4)
        self.assertEqual((first.copied, first.stopped_early), (4, True))
        (self.target / "original" / ".o4.png.partial").write_bytes(b"half a fi")
        with open(copy.manifest_path, "a") as manifest:
            manifest.write('{"kind": "original", "filen')
        rest = ImageCopy(self.source, self.target).run(self.catalog())
        self.assertEqual((rest.copied, rest.already, rest.ok), (6, 4, True))
        names = sorted(p.name for p in (self.target / "original").iterdir())
        self.assertEqual(names, [f"o{n}.png" for n in range(10)])
        for n in range(10):
            name = f"o{n}.png"
            self.assertEqual((self.target / "original" / name).read_bytes(), (self.source / "original" / name).read_bytes())
        self.assertEqual(len(ImageCopy(self.source, self.target).copied()), 10)


class BackupDecisionTests(TestCase):
    """The pure decisions over `pgbackrest info`, on fixed times."""

    def info(self, *backups: tuple[str, str, bool]) -> StanzaInfo:
        document = [{"name": "ccl", "status": {"message": "ok"}, "archive": [{"min": "A", "max": "B"}],
                     "backup": [{"label": label, "type": kind, "error": not good,
                                 "timestamp": {"start": int(datetime.fromisoformat(stop).timestamp()) - 60,
                                               "stop": int(datetime.fromisoformat(stop).timestamp())},
                                 "info": {"size": 10, "repository": {"size": 5}}}
                                for label, kind, good, stop in backups]}]
        return parse_info(document)

    def test_full_when_due_or_missing_else_differential(self):
        week = timedelta(days=7)
        now = datetime(2026, 12, 10, 2, 30, tzinfo=timezone.utc)
        self.assertEqual(choose_type(self.info(), now, week), "full")
        recent = self.info(("F1", "full", True, "2026-12-05T02:30:00+00:00"))
        self.assertEqual(choose_type(recent, now, week), "diff")
        old = self.info(("F1", "full", True, "2026-12-03T02:30:00+00:00"), ("D1", "diff", True, "2026-12-09T02:30:00+00:00"))
        self.assertEqual(choose_type(old, now, week), "full")
        failed = self.info(("F1", "full", False, "2026-12-09T02:30:00+00:00"))
        self.assertEqual(choose_type(failed, now, week), "full")

    def test_targets(self):
        seoul = timezone(timedelta(hours=9))
        self.assertEqual(parse_target("2026-12-04 18:30:00", seoul), datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc))
        self.assertEqual(parse_target("2026-12-04T09:30:00+00:00", seoul), datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc))
        with self.assertRaisesRegex(BackupError, "cannot read the time '4.12.2026'"):
            parse_target("4.12.2026", seoul)
        info = self.info(("F2", "full", True, "2026-12-04T10:00:00+00:00"), ("F1", "full", True, "2026-12-01T10:00:00+00:00"),
                         ("F0", "full", False, "2026-11-30T10:00:00+00:00"))
        now = datetime(2026, 12, 5, tzinfo=timezone.utc)
        check_target(datetime(2026, 12, 1, 10, 0, 1, tzinfo=timezone.utc), info, now)
        with self.assertRaisesRegex(BackupError, "earliest time that can be restored is 2026-12-01T10:00:01.*F1"):
            check_target(datetime(2026, 12, 1, 10, 0, 0, 500000, tzinfo=timezone.utc), info, now)
        with self.assertRaisesRegex(BackupError, "in the future"):
            check_target(datetime(2026, 12, 5, 0, 0, 1, tzinfo=timezone.utc), info, now)
        with self.assertRaisesRegex(BackupError, "no good backup"):
            check_target(now, self.info(("F0", "full", False, "2026-11-30T10:00:00+00:00")), now)
        self.assertEqual(pgbackrest_time(datetime(2026, 12, 4, 18, 30, tzinfo=seoul)), "2026-12-04 09:30:00.000000+00")

    def test_staleness(self):
        info = self.info(("F1", "full", True, "2026-12-04T00:00:00+00:00"), ("D1", "diff", False, "2026-12-05T00:00:00+00:00"))
        day = timedelta(hours=24)
        self.assertIsNone(staleness(info, datetime(2026, 12, 5, tzinfo=timezone.utc), day))
        self.assertEqual(staleness(info, datetime(2026, 12, 5, 1, tzinfo=timezone.utc), day),
                         "the last good backup (F1) is 25.0 h old (limit 24 h)")
        self.assertEqual(staleness(self.info(), datetime(2026, 12, 5, tzinfo=timezone.utc), day),
                         "there is no good backup of the database yet")
        self.assertIsNone(staleness(None, datetime(2026, 12, 5, tzinfo=timezone.utc), day))
