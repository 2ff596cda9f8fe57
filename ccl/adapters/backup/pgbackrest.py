"""pgBackRest for the local cluster: its configuration, and the commands run as the cluster's owner.

The configuration lives in ``[paths] var/backup/pgbackrest.conf`` (its existence means
``ccl backup setup`` was done); lock and log files next to it. The backup path given to
setup holds ``pgbackrest/`` (the pgBackRest repository) and ``images/`` (the image copy).
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import subprocess
from pathlib import Path

import attrs
import psycopg2

from ccl.adapters.storage.localdb import LocalCluster
from ccl.domain.backup import STANZA, BackupError, StanzaInfo, parse_info

REPO_DIR = "pgbackrest"
IMAGES_DIR = "images"


@attrs.frozen
class BackupSettings:
    """The ``[backup]`` settings."""

    full_every_days: float
    retention_full: int
    max_age_hours: float
    check_interval: float
    archive_timeout: int
    recovery_timeout: float

    @classmethod
    def from_config(cls, config) -> "BackupSettings":
        b = "backup"
        return cls(full_every_days=config.get_float(b, "full_every_days", 0, 365),
                   retention_full=config.get_int(b, "retention_full", 1, 100),
                   max_age_hours=config.get_float(b, "max_age_hours", 0.001, 24 * 365),
                   check_interval=config.get_float(b, "check_interval", 1, 86400),
                   archive_timeout=config.get_int(b, "archive_timeout", 0, 86400),
                   recovery_timeout=config.get_float(b, "recovery_timeout", 10, 7 * 86400))


class PgBackRest:
    def __init__(self, cluster: LocalCluster, state_dir: Path):
        self.cluster = cluster
        self.state_dir = state_dir
        self.config_path = state_dir / "pgbackrest.conf"

    @classmethod
    def of(cls, config, cluster: LocalCluster) -> "PgBackRest":
        return cls(cluster, config.get_path("paths", "var").absolute() / "backup")

    # Configuration -------------------------------------------------------------------------

    def is_set_up(self) -> bool:
        return self.config_path.exists()

    def backup_path(self) -> Path:
        """The path given to ``ccl backup setup --repo``."""
        for line in self.config_path.read_text().splitlines():
            if line.startswith("repo1-path="):
                return Path(line.split("=", 1)[1]).parent
        raise BackupError(f"{self.config_path} names no repo1-path: run `ccl backup setup --repo PATH` again")

    def archive_command(self) -> str:
        return f"pgbackrest --config={shlex.quote(str(self.config_path))} --stanza={STANZA} archive-push %p"

    def write_config(self, backup_path: Path, settings: BackupSettings) -> None:
        text = "\n".join([
            "# Written by `ccl backup setup`; run it again rather than editing this file.",
            "[global]",
            f"repo1-path={backup_path / REPO_DIR}",
            f"repo1-retention-full={settings.retention_full}",
            f"lock-path={self.state_dir / 'lock'}",
            f"log-path={self.state_dir / 'log'}",
            "log-level-console=warn",
            "log-level-file=info",
            "start-fast=y",
            "compress-type=zst",
            "",
            f"[{STANZA}]",
            f"pg1-path={self.cluster.datadir}",
            f"pg1-port={self.cluster.port}",
            f"pg1-socket-path={self.cluster.socket_dir}",
            "pg1-user=postgres",
            "",
        ])
        for folder in (self.state_dir, self.state_dir / "lock", self.state_dir / "log"):
            folder.mkdir(parents=True, exist_ok=True)
            self.give_to_owner(folder)
        temp = self.config_path.with_suffix(".tmp")
        temp.write_text(text)
        os.chmod(temp, 0o640)
        self.give_to_owner(temp)
        os.replace(temp, self.config_path)

    def prepare_repository(self, backup_path: Path) -> None:
        """Create the repository folder, owned by the cluster's owner, and prove it can write there."""
        repo = backup_path / REPO_DIR
        try:
            repo.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BackupError(f"cannot create the backup repository {repo}: {error.strerror}") from None
        if os.geteuid() == 0 and not any(repo.iterdir()):
            self.give_to_owner(repo)
        probe = repo / ".ccl-write-test"
        result = subprocess.run(self.cluster.owner_command(["touch", str(probe)]), capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"the backup path {repo} is not writable by the database's user"
                              f" ({self._owner_name()}): {result.stderr.strip()}")
        subprocess.run(self.cluster.owner_command(["rm", "-f", str(probe)]), capture_output=True)

    def _owner_name(self) -> str:
        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def give_to_owner(self, path: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    # PostgreSQL settings -------------------------------------------------------------------

    def allow_owner_as_superuser(self) -> bool:
        """pgBackRest connects over the socket as ``postgres`` (peer). As root it runs as the
        postgres user and that holds; a cluster owned by another user (the services run as
        ``ccl``) maps that user to ``postgres`` in pg_ident.conf. True when a file changed."""
        if os.geteuid() == 0:
            return False
        user = pwd.getpwuid(os.geteuid()).pw_name
        ident, hba = self.cluster.datadir / "pg_ident.conf", self.cluster.datadir / "pg_hba.conf"
        mapping = f"ccl_backup {user} postgres"
        rule = "local all postgres peer map=ccl_backup"
        changed = False
        if mapping not in ident.read_text().splitlines():
            with open(ident, "a") as handle:
                handle.write(f"# ccl backup: pgBackRest, run as {user}, connects as postgres\n{mapping}\n")
            changed = True
        lines = hba.read_text().splitlines(keepends=True)
        if rule + "\n" not in lines:
            hba.write_text(f"# ccl backup: pgBackRest (first match wins)\n{rule}\n" + "".join(lines))
            changed = True
        return changed

    def enable_archiving(self, archive_timeout: int) -> bool:
        """Set archive_mode/archive_command (ALTER SYSTEM); True when a restart is needed."""
        connection = psycopg2.connect(self.cluster.superuser_dsn())
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("ALTER SYSTEM SET archive_mode = 'on'")
                cursor.execute("ALTER SYSTEM SET archive_command = %s", (self.archive_command(),))
                cursor.execute("ALTER SYSTEM SET archive_timeout = %s", (str(archive_timeout),))
                cursor.execute("SELECT pg_reload_conf()")
                cursor.execute("SELECT setting FROM pg_settings WHERE name = 'archive_mode'")
                return cursor.fetchone()[0] != "on"
        finally:
            connection.close()

    # Commands ------------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return self.cluster.owner_command(["pgbackrest", f"--config={self.config_path}", f"--stanza={STANZA}", *args])

    def run(self, *args: str) -> str:
        """Run a pgbackrest command; BackupError with its own message when it fails."""
        try:
            result = subprocess.run(self.command(*args), capture_output=True, text=True)
        except FileNotFoundError:
            raise BackupError("pgbackrest is not installed: run scripts/install-system-packages.sh") from None
        if result.returncode != 0:
            message = "\n".join(line for line in (result.stderr + result.stdout).splitlines()
                                if not line.startswith("WARN: exclude special file"))
            raise BackupError(f"pgbackrest {args[0]} failed (exit {result.returncode}): {message.strip()}")
        return result.stdout

    def info(self) -> StanzaInfo:
        return parse_info(json.loads(self.run("info", "--output=json")))
