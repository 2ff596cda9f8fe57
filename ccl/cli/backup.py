"""ccl backup: backup and point-in-time recovery of the local database (pgBackRest), and a
verified incremental copy of the image store.

    ccl backup setup --repo PATH     configure pgBackRest and WAL archiving into PATH (once)
    ccl backup run [--type T]        a database backup (full|diff|incr; default: full every
                                     [backup] full_every_days, else diff), then the images
    ccl backup images [--max-files N]  only the image copy
    ccl backup list                  the backups and the time range that can be restored
    ccl backup restore [--to TIME]   bring the database back (to TIME, or to the last archived WAL)

The runbook is docs/operations.md#backup-and-restore. Only the local cluster ([database] dsn
empty) is managed here: it is the one whose data directory and owner we know.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2

from ccl.adapters.backup.image_copy import CatalogedImage, ImageCopy
from ccl.adapters.backup.pgbackrest import IMAGES_DIR, BackupSettings, PgBackRest
from ccl.adapters.peer_images import host_name
from ccl.adapters.storage.audit_log import append_now
from ccl.adapters.storage.image_records import cataloged_images, images_elsewhere
from ccl.adapters.storage.localdb import LocalDatabaseError, local_cluster, local_server_dsn, resolve_dsn
from ccl.config import load_config
from ccl.domain.backup import (
    TYPES,
    BackupError,
    check_target,
    choose_type,
    human_size,
    parse_target,
    pgbackrest_time,
)
from ccl.domain.telegrams import PLANT_TZ


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["setup", "run", "images", "list", "restore"])
    parser.add_argument("--repo", type=Path, help="setup: the backup path (a second disk or a mounted share);"
                        " restore on a new machine: the backup path to restore from")
    parser.add_argument("--type", choices=TYPES, help="run: backup type (default: full when due, else diff)")
    parser.add_argument("--no-images", action="store_true", help="run: the database only")
    parser.add_argument("--max-files", type=int, help="images: copy at most this many files in this run")
    parser.add_argument("--to", metavar="TIME",
                        help="restore: a point in time, e.g. '2026-12-04 18:30:00' (plant time, Asia/Seoul)"
                             " or with an offset '2026-12-04T09:30:00+00:00'; default: as late as archived")


class _Refused(Exception):
    """A misuse or a failure the operator can fix; the message says how."""


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _show(moment: datetime) -> str:
    return moment.astimezone(PLANT_TZ).strftime("%Y-%m-%d %H:%M:%S %Z")


def orchestrator_running(var: Path) -> int | None:
    """The pid of a running orchestrator (its pid file names a live twistd), or None."""
    try:
        pid = int((var / "orchestrator.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"twist" in command else None


class _Backup:
    def __init__(self):
        self.config = load_config()
        if self.config.get("database", "dsn"):
            raise _Refused("[database] dsn names an external PostgreSQL server: ccl backup manages only the local"
                           " cluster ([database] dsn empty); configure pgBackRest on that server itself")
        self.settings = BackupSettings.from_config(self.config)
        self.cluster = local_cluster(self.config)
        self.var = self.config.get_path("paths", "var").absolute()
        self.backrest = PgBackRest.of(self.config, self.cluster)

    def require_setup(self) -> None:
        if not self.backrest.is_set_up():
            raise _Refused(f"backups are not set up yet ({self.backrest.config_path} is missing):"
                           " run `ccl backup setup --repo PATH` first (a new machine restoring from a backup"
                           " path: `ccl backup restore --repo PATH`)")

    def require_running(self, doing: str) -> None:
        if not self.cluster.is_running():
            raise _Refused(f"the local database ({self.cluster.datadir}) is not running, so {doing} cannot be done:"
                           " start the system with scripts/start-services.sh (or `ccl localdb start`)")

    def audit(self, action: str, result: str, details: dict) -> None:
        try:
            append_now(resolve_dsn(self.config), _actor(), action, "database", result, details)
        except psycopg2.Error as error:
            print(f"warning: the audit row for {action} could not be written: {error}".strip())

    # setup ---------------------------------------------------------------------------------

    def setup(self, repo: Path | None) -> int:
        if repo is None:
            raise _Refused("setup needs --repo PATH: the backup path (a second disk or a mounted share)")
        repo = repo.absolute()
        if self.cluster.datadir.resolve() in (repo.resolve(), *repo.resolve().parents):
            raise _Refused(f"the backup path {repo} is inside the database's data directory; choose another disk")
        self.require_running("setup")
        self.backrest.prepare_repository(repo)
        self._prepare_images_folder(repo / IMAGES_DIR)
        self.backrest.write_config(repo, self.settings)
        print(f"pgBackRest configuration: {self.backrest.config_path}")
        if self.backrest.allow_owner_as_superuser():
            print("pg_hba.conf/pg_ident.conf: the cluster's owner may connect as postgres over the socket")
        if self.backrest.enable_archiving(self.settings.archive_timeout):
            self._restart_database()
        self.backrest.run("stanza-create")
        print(f"stanza ccl created in {repo}")
        self.backrest.run("check")
        print("pgbackrest check: WAL archiving works")
        self.audit("backup.setup", "ok", {"repo": str(repo)})
        print("next: take the first backup with `ccl backup run --type full`, and schedule it"
              " (docs/operations.md#backup-and-restore)")
        return 0

    def _prepare_images_folder(self, folder: Path) -> None:
        probe = folder / ".ccl-write-test"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise _Refused(f"the backup path {folder} is not writable: {error.strerror}") from None

    def _restart_database(self) -> None:
        """archive_mode takes effect at a restart: through the orchestrator when it runs the database."""
        if orchestrator_running(self.var):
            from ccl.cli.ctl import _Client

            print("archive_mode changed: restarting the database through the orchestrator (ccl ctl restart postgres)")
            try:
                code, body = _Client().request("POST", "/restart/postgres")
            except OSError as error:
                code, body = 0, {"error": str(error)}
            if code != 200:
                raise _Refused(f"the orchestrator did not restart postgres ({body.get('error')}): run"
                               " `ccl ctl restart postgres`, then `ccl backup setup` again")
            self._wait_until_accepting()
        else:
            print("archive_mode changed: restarting the local database")
            self.cluster.stop()
            self.cluster.start()

    def _wait_until_accepting(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.cluster.superuser_dsn(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise _Refused(f"the database did not come back within {timeout:g} s") from None
                time.sleep(0.5)

    # run, images, list ---------------------------------------------------------------------

    def run_backup(self, kind: str | None, images: bool) -> int:
        self.require_setup()
        self.require_running("a backup")
        info = self.backrest.info()
        kind = kind or choose_type(info, _now(), timedelta(days=self.settings.full_every_days))
        started = time.monotonic()
        print(f"database backup ({kind}) ...")
        self.backrest.run("backup", f"--type={kind}")
        last = self.backrest.info().last_good()
        print(f"database backup {last.label} done in {time.monotonic() - started:.1f} s"
              f" ({human_size(last.size)}, {human_size(last.repo_size)} in the repository)")
        self.audit("backup.run", "ok", {"label": last.label, "type": kind})
        return self.copy_images(None) if images else 0

    def copy_images(self, max_files: int | None) -> int:
        self.require_setup()
        target = self.backrest.backup_path() / IMAGES_DIR
        source = self.config.get_path("images", "root")
        host = host_name(self.config)
        connection = psycopg2.connect(resolve_dsn(self.config))
        try:
            rows = cataloged_images(connection, host)
            elsewhere = images_elsewhere(connection, host)
        finally:
            connection.close()
        started = time.monotonic()
        report = ImageCopy(source, target).run(
            (CatalogedImage(kind, filename, sha) for kind, filename, sha in rows), max_files,
            progress=lambda r: print(f"  {r.copied} images copied ..."))
        print(f"images: {report.copied} copied ({human_size(report.copied_bytes)}), {report.already} copied before,"
              f" in {time.monotonic() - started:.1f} s -> {target}")
        for path in report.missing:
            print(f"MISSING: {path} is in the database but not in the image store")
        for mismatch in report.mismatched:
            print(f"MISMATCH: {mismatch.path}: sha256 {mismatch.actual}, the database says {mismatch.expected};"
                  " not copied")
        for other, count in elsewhere.items():
            print(f"{count} images held by {other} left to its own `ccl backup images` (this is {host})")
        if report.stopped_early:
            print(f"stopped after {max_files} files (--max-files): run it again to continue")
        return 0 if report.ok else 4

    def list(self) -> int:
        self.require_setup()
        info = self.backrest.info()
        print(f"stanza ccl: {info.status}; repository {self.backrest.backup_path()}")
        if not info.backups:
            print("no backups yet: run `ccl backup run`")
            return 0
        print(f"{'label':<34} {'type':<5} {'started':<24} {'took':>7} {'size':>10} {'stored':>10}")
        for b in info.backups:
            took = (b.stopped - b.started).total_seconds()
            flag = "" if b.good else "  (ERROR: not usable)"
            print(f"{b.label:<34} {b.type:<5} {_show(b.started):<24} {took:>6.0f}s {human_size(b.size):>10}"
                  f" {human_size(b.repo_size):>10}{flag}")
        earliest = info.earliest_restorable()
        if earliest is not None:
            print(f"restorable: from {_show(earliest)} to the last archived WAL ({info.wal_max});"
                  f" WAL is archived at least every {self.settings.archive_timeout} s")
        copied = len(ImageCopy(Path(), self.backrest.backup_path() / IMAGES_DIR).copied())
        print(f"images copied and verified: {copied}")
        return 0

    # restore -------------------------------------------------------------------------------

    def restore(self, to: str | None, repo: Path | None) -> int:
        if repo is not None:
            # A new machine: the configuration as setup wrote it, pointing at the existing repository.
            if not (repo.absolute() / "pgbackrest").is_dir():
                raise _Refused(f"{repo} holds no pgBackRest repository (no pgbackrest/ folder)")
            self.backrest.write_config(repo.absolute(), self.settings)
        self.require_setup()
        target = None
        info = self.backrest.info()
        if to is not None:
            target = parse_target(to, PLANT_TZ)
            check_target(target, info, _now())
        elif info.last_good() is None:
            raise _Refused("there is no good backup to restore from")
        pid = orchestrator_running(self.var)
        if pid:
            raise _Refused(f"the orchestrator (pid {pid}) is running the services and the database: stop everything"
                           " first with scripts/stop-services.sh, then run this restore again")
        if self.cluster.is_running():
            print(f"stopping the local database ({self.cluster.datadir})")
            self.cluster.stop()
        options = ["--delta"] if self.cluster.exists() else []
        if not self.cluster.datadir.exists():
            self.cluster.datadir.mkdir(parents=True, mode=0o700)
            self.backrest.give_to_owner(self.cluster.datadir)
        if target is not None:
            options += ["--type=time", f"--target={pgbackrest_time(target)}", "--target-action=promote"]
        print(f"restoring {'to ' + _show(target) if target else 'to the last archived WAL'} ...")
        started = time.monotonic()
        self.backrest.run("restore", *options)
        print(f"files restored in {time.monotonic() - started:.1f} s; replaying WAL ...")
        try:
            self.cluster.start()
        except LocalDatabaseError:
            raise _Refused(self._recovery_failure(target)) from None
        self._wait_for_promotion()
        timeline, migrations = self._verify()
        print(f"database restored and running (timeline {timeline}, {migrations} migrations) in"
              f" {time.monotonic() - started:.1f} s")
        self.audit("backup.restore", "ok", {"to": target.isoformat() if target else "latest", "timeline": timeline})
        print("next: start the services with scripts/start-services.sh, then take a new full backup"
              " (`ccl backup run --type full`): the restored database continues on a new timeline")
        return 0

    def _recovery_failure(self, target: datetime | None) -> str:
        try:
            tail = self.cluster.logfile.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            tail = []
        if any("recovery ended before configured recovery target was reached" in line for line in tail):
            return (f"the WAL up to {_show(target)} is not in the backup (it was not archived before the loss;"
                    " WAL is archived every [backup] archive_timeout seconds): restore to an earlier time")
        return f"the restored database did not start; its log {self.cluster.logfile} ends with:\n" + "\n".join(tail)

    def _wait_for_promotion(self) -> None:
        deadline = time.monotonic() + self.settings.recovery_timeout
        while True:
            try:
                connection = psycopg2.connect(self.cluster.superuser_dsn(), connect_timeout=5)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_is_in_recovery()")
                        if not cursor.fetchone()[0]:
                            return
                finally:
                    connection.close()
            except psycopg2.OperationalError:
                if not self.cluster.is_running():
                    raise _Refused(self._recovery_failure(None)) from None
            if time.monotonic() > deadline:
                raise _Refused(f"the database is still replaying WAL after {self.settings.recovery_timeout:g} s"
                               " ([backup] recovery_timeout); watch its log " + str(self.cluster.logfile))
            time.sleep(0.5)

    def _verify(self) -> tuple[int, int]:
        # This machine's cluster, even when the DSN names both plant servers.
        connection = psycopg2.connect(local_server_dsn(self.config))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT timeline_id FROM pg_control_checkpoint()")
                timeline = cursor.fetchone()[0]
                cursor.execute("SELECT count(*) FROM schema_migrations")
                return timeline, cursor.fetchone()[0]
        finally:
            connection.close()


def run(args: argparse.Namespace) -> int:
    try:
        backup = _Backup()
        if args.action == "setup":
            return backup.setup(args.repo)
        if args.action == "run":
            return backup.run_backup(args.type, images=not args.no_images)
        if args.action == "images":
            return backup.copy_images(args.max_files)
        if args.action == "list":
            return backup.list()
        return backup.restore(args.to, args.repo)
    except (_Refused, BackupError, LocalDatabaseError) as error:
        sys.stderr.write(f"ccl backup {args.action}: {error}\n")
        return 1
    except psycopg2.OperationalError as error:
        sys.stderr.write(f"ccl backup {args.action}: the database does not answer: {str(error).strip()}\n")
        return 1
