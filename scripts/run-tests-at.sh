#!/usr/bin/env bash
# Run the tests as if it were another moment somewhere else: proof that no test depends on the
# time of day, the date or the time zone it runs in.
# Usage: scripts/run-tests-at.sh 'YYYY-MM-DD hh:mm:ss' TIME_ZONE [trial arguments, default: tests]
#   e.g. scripts/run-tests-at.sh '2026-12-31 23:55:00' Asia/Seoul tests.test_ui_stats_rollup
# The instant is read in TIME_ZONE and the clock runs on from it. libfaketime (Debian package
# `faketime`) shifts the clock of scripts/run-tests.sh and of everything it starts by one and the
# same offset: the throw-away PostgreSQL (whose initdb also takes TIME_ZONE as its time zone),
# trial, the services and Chromium the tests start. TZ=TIME_ZONE is the process time zone of all
# of them.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: $0 'YYYY-MM-DD hh:mm:ss' TIME_ZONE [trial arguments]" >&2; exit 2
fi
instant=$1 zone=$2
shift 2
if ! command -v faketime >/dev/null; then
  echo "run-tests-at: needs faketime (Debian: apt-get install faketime)" >&2; exit 1
fi
if [ ! -e "/usr/share/zoneinfo/$zone" ]; then
  echo "run-tests-at: unknown time zone $zone" >&2; exit 1
fi
export TZ=$zone
echo "run-tests-at: starting at $(faketime "$instant" date '+%Y-%m-%d %H:%M:%S %Z (%z)')"
exec faketime "$instant" scripts/run-tests.sh "$@"
