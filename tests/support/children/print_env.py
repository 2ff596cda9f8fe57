"""print_env.py: print the variables a child needs, then run until stopped."""

import os
import time

for name in ("PATH", "PYTHONPATH", "LANG", "CCL_ORCHESTRATOR_PID"):
    if name in os.environ:
        print(f"{name}={os.environ[name]}", flush=True)
while True:
    time.sleep(60)
