#!/usr/bin/env bash
# Create or update the virtual environment with the pinned dependencies and the ccl package.
# Usage: scripts/setup-venv.sh [--test]      (venv path: $CCL_VENV, default ./.venv)
# Re-running is cheap: nothing is reinstalled unless setup.cfg changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${CCL_VENV:-$PWD/.venv}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python=$(command -v "$candidate"); break
  fi
done
[ -n "$python" ] || { echo "setup-venv: Python 3.11 is required" >&2; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.ccl-installed"
want="$(sha256sum setup.cfg | cut -d' ' -f1)$extras $PWD"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # compat mode: a default editable install hides twisted/plugins from twistd.
  "$venv/bin/python" -m pip install --quiet -e ".$extras" --config-settings editable_mode=compat
  echo "$want" > "$stamp"
fi
echo "$venv"
