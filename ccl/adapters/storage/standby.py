"""A hot standby of the plant database: PostgreSQL streaming replication, nothing of our own.

On the primary, ``allow_standby`` creates the replication role (its password from a file,
never a default) and lets it in through pg_hba.conf; ``set_synchronous`` then makes the
standby synchronous (a commit returns once the standby has it: nothing committed is lost at
a promotion). On the second machine, ``make_standby`` copies the primary with
``pg_basebackup -R`` through a physical replication slot (the primary keeps the WAL the
standby has not received yet) and starts it; ``promote`` makes it the primary
(``pg_ctl promote``); ``replication_status`` tells the role and the lag of either.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import attrs
import psycopg2
from psycopg2 import sql

from ccl.adapters.storage.localdb import LocalCluster, LocalDatabaseError

#: Names we put into SQL identifiers and pg_hba.conf: plain lower-case words only.
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

REPLICATION_USER = "ccl_replica"
SLOT = "ccl_standby"


def _checked_name(what: str, name: str) -> str:
    if not _NAME.match(name):
        raise LocalDatabaseError(f"{what} {name!r}: use lower-case letters, digits and _ only")
    return name


def read_password(path: Path | None) -> str:
    """The replication password: the first line of ``path`` (keep it mode 600).

    There is no default: a replication role with a known password would hand the whole
    database to anyone on the plant network."""
    if path is None:
        raise LocalDatabaseError("no replication password: give --password-file or set [standby] password_file"
                                 " (CCL_STANDBY_PASSWORD_FILE)")
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise LocalDatabaseError(f"cannot read the replication password file: {error}") from None
    password = lines[0].strip() if lines else ""
    if len(password) < 12:
        raise LocalDatabaseError(f"{path}: the replication password is empty or shorter than 12 characters")
    return password


def parse_host_port(text: str, default_port: int = 5432) -> tuple[str, int]:
    """``HOST[:PORT]`` (an IPv6 address in brackets: ``[::1]:5432``)."""
    match = re.match(r"^\[([^\]]+)\](?::(\d+))?$", text) or re.match(r"^([^:\[\]]+)(?::(\d+))?$", text)
    if not match or not match.group(1):
        raise LocalDatabaseError(f"--primary {text!r}: expected HOST or HOST:PORT")
    port = int(match.group(2)) if match.group(2) else default_port
    if not 0 < port < 65536:
        raise LocalDatabaseError(f"--primary {text!r}: port out of range")
    return match.group(1), port


def allow_standby(cluster: LocalCluster, password: str, *, network: str, user: str = REPLICATION_USER) -> list[str]:
    """On the primary: the replication role and the pg_hba.conf lines for it and for the
    ``ccl`` user from ``network`` (scram-sha-256). Idempotent; returns what it changed."""
    _checked_name("replication user", user)
    if not re.match(r"^[0-9a-fA-F.:]+/\d{1,3}$", network):
        raise LocalDatabaseError(f"--network {network!r}: expected an address range such as 192.168.10.0/24")
    done = []
    connection = psycopg2.connect(cluster.superuser_dsn())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE ROLE {} REPLICATION LOGIN").format(sql.Identifier(user)))
                done.append(f"created the replication role {user}")
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(user)), (password,))
            hba = cluster.datadir / "pg_hba.conf"
            present = hba.read_text().splitlines()
            # The replication connection, and the services of the other plant server (after a
            # promotion they use this cluster's copy of the file, so both lines travel along).
            lines = [f"host replication {user} {network} scram-sha-256", f"host ccl ccl {network} scram-sha-256"]
            if cluster.ssl:
                lines = ["hostssl" + line[4:] for line in lines]
            missing = [line for line in lines if line not in present]
            if missing:
                with hba.open("a") as file:
                    file.write("# ccl standby allow: the standby and the other plant server\n")
                    file.write("".join(f"{line}\n" for line in missing))
                done += [f"pg_hba.conf: {line}" for line in missing]
            cursor.execute("SELECT pg_reload_conf()")
    finally:
        connection.close()
    return done


def set_synchronous(cluster: LocalCluster, name: str | None) -> None:
    """On the primary: a commit returns only once the standby ``name`` has it on disk (None:
    asynchronous again). Only once the standby streams: until then every commit would wait.

    Why: with asynchronous replication the last commits before the primary dies may never
    reach the standby, and the MES journal has already released those telegrams."""
    value = "" if name is None else f'FIRST 1 ("{_checked_name("standby name", name)}")'
    connection = psycopg2.connect(cluster.superuser_dsn())
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (value,))
            cursor.execute("SELECT pg_reload_conf()")
    finally:
        connection.close()


@attrs.frozen
class StandbySource:
    """Where the standby copies from and streams from."""

    host: str
    port: int
    password: str
    user: str = REPLICATION_USER
    slot: str = SLOT
    #: The standby's name on the primary (application_name; synchronous_standby_names uses it).
    name: str = "ccl_standby"


def make_standby(cluster: LocalCluster, source: StandbySource, *, fast: bool = False) -> None:
    """Copy the primary into ``cluster.datadir`` (which must not hold a cluster yet) with
    ``pg_basebackup -R`` through a new replication slot, and start it as a hot standby."""
    _checked_name("slot", source.slot)
    _checked_name("standby name", source.name)
    if cluster.exists():
        raise LocalDatabaseError(f"{cluster.datadir} already holds a cluster: a standby starts from an empty directory")
    cluster.datadir.mkdir(parents=True, exist_ok=True)
    os.chmod(cluster.datadir, 0o700)
    if os.geteuid() == 0:
        import pwd

        owner = pwd.getpwnam("postgres")
        os.chown(cluster.datadir, owner.pw_uid, owner.pw_gid)
    # The password goes by the environment (never on a command line that ps shows);
    # application_name names this standby on the primary.
    conninfo = f"host={source.host} port={source.port} user={source.user} application_name={source.name}"
    argv = [str(cluster.bindir / "pg_basebackup"), "-D", str(cluster.datadir), "-d", conninfo,
            "-R", "-X", "stream", "-C", "-S", source.slot, "-c", "fast", "--no-password"]
    env = dict(os.environ, PGPASSWORD=source.password, PGCONNECT_TIMEOUT="10")
    result = subprocess.run(cluster.owner_command(argv), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        shutil.rmtree(cluster.datadir, ignore_errors=True)
        raise LocalDatabaseError(f"pg_basebackup failed: {result.stderr.strip() or result.stdout.strip()}")
    _keep_auto_conf_private(cluster)
    cluster.start(fast=fast)


def _keep_auto_conf_private(cluster: LocalCluster) -> None:
    """pg_basebackup -R writes primary_conninfo, password included, into postgresql.auto.conf."""
    auto = cluster.datadir / "postgresql.auto.conf"
    if auto.exists():
        os.chmod(auto, 0o600)


def promote(cluster: LocalCluster) -> None:
    """Make the standby the primary; returns once it accepts writes."""
    if not (cluster.datadir / "standby.signal").exists():
        raise LocalDatabaseError(f"{cluster.datadir} is not a standby (no standby.signal): nothing to promote")
    if not cluster.is_running():
        raise LocalDatabaseError(f"{cluster.datadir}: the standby is not running; start it first")
    result = subprocess.run(cluster.owner_command(
        [str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), "-w", "-t", "60", "promote"]),
        capture_output=True, text=True)
    if result.returncode != 0:
        raise LocalDatabaseError(f"pg_ctl promote failed: {result.stderr.strip() or result.stdout.strip()}")


@attrs.frozen
class ReplicationStatus:
    role: str  # "primary" or "standby"
    #: Standby: seconds since the last replayed commit's time on the primary (None: nothing
    #: replayed yet); bytes received but not replayed; the WAL receiver's state.
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    receiver: str | None = None
    #: Primary: one (name, address, state, sync_state, bytes behind) per connected standby.
    standbys: tuple[tuple, ...] = ()


def replication_status(dsn: str) -> ReplicationStatus:
    connection = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            if cursor.fetchone()[0]:
                cursor.execute(
                    "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,"
                    " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
                    " (SELECT status FROM pg_stat_wal_receiver)")
                seconds, behind, receiver = cursor.fetchone()
                return ReplicationStatus("standby", seconds, behind, receiver or "not connected")
            cursor.execute(
                "SELECT application_name, coalesce(host(client_addr), 'local'), state, sync_state,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication ORDER BY 1")
            return ReplicationStatus("primary", standbys=tuple(tuple(row) for row in cursor.fetchall()))
    finally:
        connection.close()


def multi_host_dsn(hosts: list[tuple[str, int]], *, target: str = "read-write", **params: str) -> str:
    """One libpq DSN naming every server: libpq tries them in order at each connect and keeps
    the first whose session matches ``target`` (read-write: the primary), so a reconnect after
    a promotion finds the new primary by itself."""
    words = [f"host={','.join(h for h, _ in hosts)}", f"port={','.join(str(p) for _, p in hosts)}"]
    words += [f"{key}={value}" for key, value in params.items()]
    words.append(f"target_session_attrs={target}")
    return " ".join(words)
