"""ignore_term.py: ignores SIGTERM and runs until killed."""

import os
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"ignoring TERM, pid {os.getpid()}", flush=True)
while True:
    time.sleep(60)
