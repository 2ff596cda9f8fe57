#!/usr/bin/env bash
# Set up and run the whole test suite against a throw-away PostgreSQL cluster.
# Usage: scripts/run-tests.sh [trial arguments, default: tests]
# Prints trial's output, then "N passed, N failed"; exits non-zero on a failure or if no test ran.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/install-system-packages.sh || exit 1
venv=$(bash scripts/setup-venv.sh --test | tail -n 1) || exit 1
export PATH="$venv/bin:$PATH"

work=$(mktemp -d /tmp/ccl-tests-XXXXXX)
chmod 755 "$work"
port=$(python -c 'from ccl.adapters.storage.localdb import free_port; print(free_port())')
cleanup() {
  ccl localdb destroy --datadir "$work/pg" --port "$port" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ccl localdb init --datadir "$work/pg" --port "$port" --trust || exit 1
ccl localdb start --datadir "$work/pg" --port "$port" --fast || exit 1
export CCL_TEST_PG_DSN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
python -m tests.support.template || exit 1

cd "$work"   # trial's _trial_temp goes here, not into the checkout
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python -m twisted.trial --temp-directory="$work/_trial_temp" "${@:-tests}" 2>&1 | tee "$work/trial.log"
status=${PIPESTATUS[0]}
python "$root/scripts/trial-summary.py" "$work/trial.log" || status=1
exit $status
