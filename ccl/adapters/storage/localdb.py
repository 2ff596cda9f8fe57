"""A PostgreSQL cluster of our own, for a plant PC without a database server and for tests.

``initdb`` and ``postgres`` refuse to run as root, so as root every server command runs as
the ``postgres`` user (``runuser``), on a data directory that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import attrs
import psycopg2
from psycopg2 import sql


class LocalDatabaseError(RuntimeError):
    """The local cluster could not be created, started or stopped; the message says why."""


def find_bindir() -> Path:
    explicit = os.environ.get("PG_BINDIR")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    for candidate in candidates:
        if candidate and Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise LocalDatabaseError("no PostgreSQL server binaries (initdb) found; install postgresql-15 or set PG_BINDIR")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


@attrs.define
class LocalCluster:
    """A cluster in ``datadir`` listening on 127.0.0.1:``port``."""

    datadir: Path
    port: int
    bindir: Path = attrs.field(factory=find_bindir)
    #: Serve TLS with the certificate and key ``install_certificate`` put in the data directory.
    ssl: bool = False
    #: listen_addresses: loopback only, unless the other plant server must reach this one
    #: (a standby streaming from it, its services after a promotion).
    listen: str = "127.0.0.1"

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.log"

    @property
    def superuser_password_file(self) -> Path:
        return self.datadir.parent / f"{self.datadir.name}.superuser"

    def owner_command(self, argv: list[str]) -> list[str]:
        """``argv`` as the cluster's owner: the ``postgres`` user when we are root (pgBackRest too)."""
        if _as_root():
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str]) -> str:
        result = subprocess.run(self.owner_command(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise LocalDatabaseError(f"{Path(argv[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def exists(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self, *, trust: bool = False) -> None:
        """Create the cluster. With ``trust`` (throw-away test clusters) loopback needs no password."""
        if self.exists():
            return
        self.datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.datadir, 0o700)
        argv = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-E", "UTF8",
                "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C"]
        if trust:
            argv += ["--auth=trust"]
        else:
            password = secrets.token_urlsafe(24)
            self.superuser_password_file.write_text(password + "\n")
            os.chmod(self.superuser_password_file, 0o600)
            argv += ["--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={self.superuser_password_file}"]
        if _as_root():
            postgres = pwd.getpwnam("postgres")
            os.chown(self.datadir, postgres.pw_uid, postgres.pw_gid)
            if self.superuser_password_file.exists():
                os.chown(self.superuser_password_file, postgres.pw_uid, postgres.pw_gid)
        self._run(argv)

    def server_argv(self, *, fast: bool = False) -> list[str]:
        """The foreground ``postgres`` command, as the orchestrator runs it."""
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.socket_dir), "-c", f"listen_addresses={self.listen}"]
        if self.ssl:
            argv += ["-c", "ssl=on"]
        if fast:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return self.owner_command(argv)

    def start(self, *, fast: bool = False) -> None:
        if self.is_running():
            return
        if _as_root():
            self.logfile.touch()
            postgres = pwd.getpwnam("postgres")
            os.chown(self.logfile, postgres.pw_uid, postgres.pw_gid)
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.listen}"
        if self.ssl:
            options += " -c ssl=on"
        if fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options,
                   "-l", str(self.logfile), "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        if not self.is_running():
            return
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop"])

    def is_running(self) -> bool:
        if not self.exists():
            return False
        result = subprocess.run(self.owner_command([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"]),
                                capture_output=True, text=True)
        return result.returncode == 0

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.datadir, ignore_errors=True)
            for leftover in (self.logfile, self.superuser_password_file):
                leftover.unlink(missing_ok=True)

    def install_certificate(self, cert: Path, key: Path) -> None:
        """Serve TLS with ``cert``/``key`` (PEM, e.g. from ``ccl tls init``): copied to the data
        directory's server.crt/server.key (PostgreSQL's defaults; the key 0600 and owned by the
        server's user, as it demands), and every TCP connection must use TLS (hostssl)."""
        if not self.exists():
            raise LocalDatabaseError(f"{self.datadir}: no cluster to install a certificate in")
        try:
            pem_cert, pem_key = Path(cert).read_bytes(), Path(key).read_bytes()
        except OSError as error:
            raise LocalDatabaseError(f"cannot read the server certificate or key: {error}") from None
        owner = pwd.getpwnam("postgres") if _as_root() else None
        for name, data, mode in (("server.crt", pem_cert, 0o644), ("server.key", pem_key, 0o600)):
            temporary = self.datadir / f"{name}.tmp"
            temporary.unlink(missing_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            if owner is not None:
                os.chown(temporary, owner.pw_uid, owner.pw_gid)
            os.replace(temporary, self.datadir / name)
        self.require_tls(True)

    def require_tls(self, required: bool) -> None:
        """pg_hba.conf: TCP connections must use TLS (``hostssl``), or may go without (``host``,
        as initdb writes them) once the cluster serves TLS no longer."""
        hba = self.datadir / "pg_hba.conf"
        old, new = ("host ", "hostssl ") if required else ("hostssl ", "host ")
        lines = hba.read_text().splitlines(keepends=True)
        changed = [new + line[len(old):] if line.startswith(old) else line for line in lines]
        if changed != lines:
            hba.write_text("".join(changed))
            if self.is_running():
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "reload"])

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        parts = [f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"]
        if self.superuser_password_file.exists():
            parts.append(f"password={self.superuser_password_file.read_text().strip()}")
        return " ".join(parts)

    def create_database(self, name: str, *, owner_password: str | None = None, template: str | None = None) -> str:
        """Create role and database ``name`` if missing; return a DSN for it."""
        connection = psycopg2.connect(self.superuser_dsn())
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
                if owner_password is not None:
                    cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(name)), (owner_password,))
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
                    if template:
                        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                    cursor.execute(statement)
        finally:
            connection.close()
        dsn = f"host=127.0.0.1 port={self.port} dbname={name} user={name}"
        if owner_password is not None:
            dsn += f" password={owner_password}"
        return dsn


def _has_c_utf8() -> bool:
    result = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    return any(line.lower() in {"c.utf8", "c.utf-8"} for line in result.stdout.split())


def local_cluster(config) -> LocalCluster:
    """The cluster ``[paths] var``/pgdata that is used when ``[database] dsn`` is empty."""
    from ccl.config import ConfigError

    listen = config.get("database", "local_listen") or "127.0.0.1"
    if not re.match(r"^[0-9A-Za-z.:*_-]+(,[0-9A-Za-z.:*_-]+)*$", listen):
        raise ConfigError(f"{config.where('database', 'local_listen')}: {listen!r} is not a comma-separated list of addresses")
    return LocalCluster(config.get_path("paths", "var") / "pgdata", config.get_int("database", "local_port", 1, 65535),
                        ssl=bool(config.get("database", "local_ssl_cert")), listen=listen)


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def with_tls(config, dsn: str) -> str:
    """``dsn`` with ``[database] sslmode`` and ``sslrootcert`` (default ``[tls] ca_file``) set,
    for key=value and URI DSNs alike; unchanged when sslmode is empty."""
    from ccl.config import ConfigError
    from psycopg2.extensions import make_dsn

    mode = config.get("database", "sslmode")
    if not mode:
        return dsn
    if mode not in SSLMODES:
        raise ConfigError(f"{config.where('database', 'sslmode')}: {mode!r} is not one of {', '.join(SSLMODES)}")
    extra = {"sslmode": mode}
    for section, key in (("database", "sslrootcert"), ("tls", "ca_file")):
        if config.get(section, key):
            extra["sslrootcert"] = str(config.get_path(section, key))
            break
    if mode in ("verify-ca", "verify-full") and "sslrootcert" not in extra:
        raise ConfigError(f"{config.where('database', 'sslmode')}: {mode} needs [database] sslrootcert or [tls] ca_file")
    return make_dsn(dsn, **extra)


def dsn_file(config) -> Path:
    return config.get_path("paths", "var") / "database.dsn"


def resolve_dsn(config) -> str:
    """The configured DSN, or the local database's one written by ``ccl localdb setup``."""
    from ccl.config import ConfigError

    dsn = config.get("database", "dsn")
    if dsn:
        return with_tls(config, dsn)
    path = dsn_file(config)
    if not path.exists():
        raise ConfigError(
            "[database] dsn is empty and there is no local database yet "
            f"({path} is missing): run scripts/start-services.sh or `ccl localdb setup`"
        )
    return with_tls(config, path.read_text().strip())


def resolve_read_dsn(config) -> str | None:
    """``[database] read_dsn`` (TLS settings added), or None: the UI reads everything from the primary."""
    dsn = config.get("database", "read_dsn")
    return with_tls(config, dsn) if dsn else None


def local_server_dsn(config) -> str:
    """The configured DSN aimed at this machine's own cluster, whatever its role: with a hot
    standby the DSN names both servers and asks for the primary, but the health check of
    the local ``postgres`` (and ``ccl standby status``) is about the one here."""
    from psycopg2.extensions import make_dsn

    cluster = local_cluster(config)
    return make_dsn(resolve_dsn(config), host="127.0.0.1", port=str(cluster.port), target_session_attrs="any")


def setup_local_database(config) -> str:
    """Create (once) and start the local cluster and the ``ccl`` database; return its DSN."""
    cluster = local_cluster(config)
    cluster.init()
    if cluster.ssl:
        # Each setup installs the configured pair again, so a re-issued certificate takes effect.
        cluster.install_certificate(config.get_path("database", "local_ssl_cert"),
                                    config.get_path("database", "local_ssl_key"))
    else:
        cluster.require_tls(False)  # TLS switched off again: plain TCP must get in
    cluster.start()
    path = dsn_file(config)
    if path.exists():
        return with_tls(config, path.read_text().strip())
    dsn = cluster.create_database("ccl", owner_password=secrets.token_urlsafe(24))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(dsn + "\n")
    return with_tls(config, dsn)
