#!/usr/bin/env bash
# Take this checkout from a fresh machine to a running system, and wait until it is healthy.
#
#   system packages -> virtual environment -> local database (when [database] dsn is empty)
#   -> migrations -> first admin user (random password, printed once) -> the orchestrator
#   (twistd -y ccl.tac, in the background, pid file in [paths] var) -> wait until every
#   service is healthy -> print the URLs.
#
# Safe to run twice: what exists is kept; a running orchestrator is left running.
# The local PostgreSQL runs as a child of the orchestrator: `ccl localdb setup` starts it with
# pg_ctl to create and migrate the database, and this script stops that server again before
# the orchestrator starts its own foreground copy.
# Settings: CCL_CONFIG and CCL_* variables (ccl/data/ccl.ini). Venv: $CCL_VENV or ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/install-system-packages.sh
venv=$(bash scripts/setup-venv.sh | tail -n 1)
export PATH="$venv/bin:$PATH"

# The settings this script needs, read by the same code the services use.
settings=$(python - <<'PY'
import shlex, sys
from ccl.config import ConfigError, load_config
from ccl.orchestrator.services import listener, tls_ca_file
try:
    c = load_config()
    tls_ca_file(c)  # a CA file that does not load stops here, not in every client later
    values = {"var": c.get_path("paths", "var"), "logs": c.get_path("paths", "logs"),
              "dsn_configured": "yes" if c.get("database", "dsn") else "",
              "api": listener(c, "orchestrator", "listen").url(), "grace": c.get_float("orchestrator", "grace")}
except ConfigError as error:
    sys.exit(f"start-services: configuration error: {error}")
for key, value in values.items():
    print(f"{key}={shlex.quote(str(value))}")
PY
)
eval "$settings"
pidfile="$var/orchestrator.pid"
mkdir -p "$var" "$logs"

running_pid() {
  # The pid in the pid file, if that process is alive and is a twistd (not a reused pid).
  [ -s "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "twist" && echo "$pid"
}

if pid=$(running_pid); then
  echo "start-services: the orchestrator is already running (pid $pid)"
else
  rm -f "$pidfile"
  if [ -z "$dsn_configured" ]; then
    ccl localdb setup
  else
    ccl migrate
  fi
  has_admin=$(python - <<'PY'
import psycopg2
from ccl.adapters.storage.localdb import resolve_dsn
from ccl.config import load_config
connection = psycopg2.connect(resolve_dsn(load_config()))
with connection, connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM users WHERE role = 'admin'")
    print(cursor.fetchone()[0])
connection.close()
PY
)
  if [ "$has_admin" = "0" ]; then
    echo "start-services: creating the first admin user"
    ccl create-user admin --role admin --generate-password
  fi
  if [ -z "$dsn_configured" ]; then
    ccl localdb stop   # the orchestrator runs it from now on, in the foreground, as its child
  fi
  echo "start-services: starting the orchestrator (log: $logs/orchestrator.log)"
  twistd --pidfile "$pidfile" --logfile "$logs/orchestrator.log" --umask 022 -y "$root/ccl.tac"
fi

if ! ccl ctl wait --timeout "${CCL_START_TIMEOUT:-180}"; then
  ccl ctl status || true
  echo "start-services: not every service is healthy; see 'ccl ctl logs ID' and $logs/" >&2
  exit 1
fi
ccl ctl status
python - <<'PY'
from ccl.config import load_config
from ccl.orchestrator.services import listener
c = load_config()
wanted = c.get_list("orchestrator", "services")
print(f"orchestrator     {listener(c, 'orchestrator', 'listen').url('/status')}   (token: [paths] var/orchestrator.token)")


def mes() -> str:
    found = listener(c, "mes", "listen")
    return f"MES telegrams   {'tls' if found.tls else 'tcp'} {found.address()}"


urls = {"mes-tcp-service": mes,
        "image-receiver": lambda: "images          " + listener(c, "images", "listen").url(),
        "defect-data-receiver": lambda: "defects         " + listener(c, "defects", "listen").url(),
        "ui-service": lambda: "web UI          " + listener(c, "ui", "listen").url()}
for name in wanted:
    print(urls[name]())
PY
