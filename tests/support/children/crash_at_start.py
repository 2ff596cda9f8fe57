"""crash_at_start.py: fails at start-up, as a service with a broken configuration does."""

import sys

sys.stderr.write("crash_at_start: cannot start (on purpose)\n")
sys.exit(3)
