"""The services the orchestrator runs: a table of data, turned into child specs.

Each service is its own twistd plugin process (``python -m twisted -n <plugin>``) with the
same configuration as the orchestrator (the environment is passed through), so a crash in
one never takes another down. Health checks come from the service's own listen settings.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import attrs

from ccl.config import Config, ConfigError


@attrs.frozen
class Check:
    """``http``: GET url must answer 200. ``tcp``: a connect to host:port must succeed.
    ``postgres``: a libpq connection with ``dsn`` must succeed."""

    kind: str
    target: str
    #: For an https:// target: the CA file its certificate is verified against (None: the system's store).
    ca_file: str | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.target}" if self.kind != "postgres" else "postgres connect"


@attrs.frozen
class ChildSpec:
    id: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    uid: int | None = None
    gid: int | None = None
    stop_signal: str = "TERM"
    checks: tuple[Check, ...] = ()
    metrics_url: str | None = None
    #: CA file for an https:// metrics_url (None: the system's trust store).
    ca_file: str | None = None
    #: Started first and waited for (healthy) before the others: the database.
    first: bool = False
    #: Extra things for ``/status`` (ports etc.).
    info: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Service:
    id: str
    plugin: str
    #: (section, key) of listen endpoints checked over HTTP GET /health
    http_health: tuple[tuple[str, str], ...] = ()
    #: (section, key) of listen endpoints checked with a TCP connect
    tcp_health: tuple[tuple[str, str], ...] = ()
    #: (section, key) of the endpoint serving /metrics
    metrics: tuple[str, str] | None = None


#: The table of services (architecture.md). Order is start order.
SERVICES: tuple[Service, ...] = (
    Service("mes-tcp-service", "ccl-mes", http_health=(("mes", "status_listen"),),
            tcp_health=(("mes", "listen"),), metrics=("mes", "status_listen")),
    Service("image-receiver", "ccl-images", http_health=(("images", "listen"),), metrics=("images", "listen")),
    Service("defect-data-receiver", "ccl-defects", http_health=(("defects", "listen"),), metrics=("defects", "listen")),
    Service("ui-service", "ccl-ui", http_health=(("ui", "listen"),), metrics=("ui", "listen")),
)
POSTGRES = "postgres"

#: Variables a child inherits besides CCL_*; everything else is left out on purpose.
_PASSED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "PG_BINDIR", "TMPDIR", "SSL_CERT_FILE",
           "PYTHONHASHSEED")


def project_root() -> Path:
    """The directory holding the ``ccl`` package and ``twisted/plugins``."""
    return Path(__file__).resolve().parent.parent.parent


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: only what spawnProcess is given reaches it, so build what it needs."""
    environ = dict(os.environ if environ is None else environ)
    env = {key: value for key, value in environ.items()
           if key in _PASSED or key.startswith(("CCL_", "LC_"))}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.setdefault("LANG", "C.UTF-8")
    root = str(project_root())
    paths = [root] + [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # Whole lines reach the log at once instead of sitting in a pipe buffer.
    env["PYTHONUNBUFFERED"] = "1"
    return env


@attrs.frozen
class Listener:
    """Where a client of ours reaches a listen setting, and whether it speaks TLS there."""

    host: str
    port: int
    tls: bool

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"


#: Endpoint string fields are separated by colons not escaped with a backslash.
_FIELD = re.compile(r"(?<!\\):")


def listener(config: Config, section: str, key: str) -> Listener:
    """The address a client uses for a ``tcp:``, ``tcp6:`` or ``ssl:`` listen setting (loopback
    when it listens on every interface). A TLS client verifies the certificate against this
    host, so the site's certificates name 127.0.0.1 (``ccl tls init`` adds it)."""
    text = config.get_endpoint(section, key)
    kind, *fields = [field.replace("\\:", ":") for field in _FIELD.split(text)]
    if kind not in ("tcp", "tcp6", "ssl"):
        raise ConfigError(f"{config.where(section, key)}: {kind}: endpoints cannot be reached by address"
                          " (use tcp: or ssl:)")
    port = None
    host = "::1" if kind == "tcp6" else "127.0.0.1"
    for index, field in enumerate(fields):
        name, equals, value = field.partition("=")
        if not equals and index == 0:
            port = int(name)
        elif name == "port":
            port = int(value)
        elif name == "interface" and value not in ("", "0.0.0.0", "::"):
            host = value
    if port is None:
        raise ConfigError(f"{config.where(section, key)}: {text!r} names no port")
    return Listener(host, port, tls=kind == "ssl")


def endpoint_address(config: Config, section: str, key: str) -> tuple[str, int]:
    """(host, port) where a client reaches a listen setting; see ``listener``."""
    found = listener(config, section, key)
    return found.host, found.port


def tls_ca_file(config: Config) -> str | None:
    """``[tls] ca_file``, checked: the CA our clients verify our TLS listeners with."""
    # Imported here: the scripts read endpoints through this module and need no TLS stack for it.
    from ccl.adapters.tls import ca_file

    return ca_file(config)


def wrap(argv: list[str], stop_signal: str = "TERM", user: str | None = None) -> list[str]:
    """Run ``argv`` through exec_child, which ties its life to the orchestrator's (Linux).

    The wrapper's source is passed with ``-I -c`` so that it runs even as a user (postgres)
    who cannot read the project directory.
    """
    source = Path(__file__).with_name("exec_child.py").read_text(encoding="utf-8")
    return [sys.executable, "-I", "-c", source, stop_signal, user or "-", *argv]


def twistd_argv(plugin: str) -> list[str]:
    """twistd in the foreground, logging to stdout (our log file). ``python -m twisted`` is
    ``twist``, which has no -n/--pidfile, hence twistd's own entry point."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "--logfile=-", plugin]


def service_child(config: Config, service: Service, env: dict[str, str]) -> ChildSpec:
    ca = tls_ca_file(config)
    checks = tuple(Check("http", listener(config, s, k).url("/health"), ca_file=ca) for s, k in service.http_health)
    checks += tuple(Check("tcp", listener(config, s, k).address()) for s, k in service.tcp_health)
    metrics = listener(config, *service.metrics).url("/metrics") if service.metrics else None
    return ChildSpec(id=service.id, argv=wrap(twistd_argv(service.plugin)), env=env, cwd=os.getcwd(),
                     checks=checks, metrics_url=metrics, ca_file=ca, info={"plugin": service.plugin})


def postgres_child(config: Config, env: dict[str, str]) -> ChildSpec:
    """The local cluster in the foreground; SIGINT is PostgreSQL's fast shutdown."""
    from ccl.adapters.storage.localdb import local_cluster, local_server_dsn

    cluster = local_cluster(config)
    argv = cluster.server_argv()
    user = None
    if argv[0] == "runuser":
        # runuser would sit between us and postgres and swallow signals: exec_child switches user instead.
        argv = argv[argv.index("--") + 1:]
        user = "postgres"
    # After a crash PostgreSQL fsyncs every file of the cluster one by one before recovery
    # (seconds); syncfs flushes the same data with one call per file system (PostgreSQL >= 14).
    argv = argv + ["-c", "recovery_init_sync_method=syncfs"]
    pg_env = {k: v for k, v in env.items() if k in ("PATH", "LANG", "TZ") or k.startswith("LC_")}
    return ChildSpec(id=POSTGRES, argv=wrap(argv, "INT", user), env=pg_env, cwd=str(cluster.datadir),
                     stop_signal="INT", checks=(Check("postgres", local_server_dsn(config)),), first=True,
                     info={"datadir": str(cluster.datadir), "port": str(cluster.port)})


def children(config: Config, environ: dict[str, str] | None = None) -> list[ChildSpec]:
    """The children of this configuration, postgres first when the database is the local one."""
    env = child_environment(environ)
    known = {service.id: service for service in SERVICES}
    wanted = [s.strip() for s in config.get_list("orchestrator", "services")]
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ConfigError(f"{config.where('orchestrator', 'services')}: unknown service {', '.join(unknown)}"
                          f" (known: {', '.join(known)})")
    result = []
    if not config.get("database", "dsn"):
        result.append(postgres_child(config, env))
    result += [service_child(config, known[name], env) for name in wanted]
    return result
