#!/usr/bin/env bash
# Stop the whole system cleanly: every service through the orchestrator's API, then the
# orchestrator itself through its pid file (it stops what is left: TERM, KILL after grace).
# Never kills anything by process name or port. Safe to run twice.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${CCL_VENV:-$PWD/.venv}"
[ -x "$venv/bin/python" ] || { echo "stop-services: no virtual environment at $venv: nothing was started" ; exit 0; }
export PATH="$venv/bin:$PATH"

settings=$(python - <<'PY'
import shlex, sys
from ccl.config import ConfigError, load_config
try:
    c = load_config()
    values = {"var": c.get_path("paths", "var"), "dsn_configured": "yes" if c.get("database", "dsn") else "",
              "grace": int(c.get_float("orchestrator", "grace"))}
except ConfigError as error:
    sys.exit(f"stop-services: configuration error: {error}")
for key, value in values.items():
    print(f"{key}={shlex.quote(str(value))}")
PY
) || exit 2
eval "$settings"
pidfile="$var/orchestrator.pid"

running_pid() {
  [ -s "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "twist" && echo "$pid"
}

if pid=$(running_pid); then
  echo "stop-services: stopping every service through the orchestrator"
  ccl ctl stop-all || echo "stop-services: the API did not answer; stopping through the pid file"
  echo "stop-services: stopping the orchestrator (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  # Its shutdown waits up to grace per stage (services, then the database).
  limit=$(( grace * 3 + 30 ))
  for _ in $(seq 1 $(( limit * 10 ))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    # Its children die with it (parent-death signal), so none is orphaned.
    echo "stop-services: pid $pid did not stop within $limit s: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  echo "stop-services: stopped"
else
  [ -e "$pidfile" ] && rm -f "$pidfile" && echo "stop-services: removed a stale pid file"
  echo "stop-services: the orchestrator is not running"
fi

# A local database left running by `ccl localdb setup` (an interrupted start) is stopped by
# its data directory, never by name.
if [ -z "$dsn_configured" ] && ccl localdb status >/dev/null 2>&1; then
  echo "stop-services: stopping the local database"
  ccl localdb stop
fi
exit 0
