"""fake_orchestrator.py: start one wrapped child (print_lines) like the orchestrator does, print its pid, wait."""

import os
import subprocess
import sys
import time

from ccl.orchestrator.services import child_environment, wrap

here = os.path.dirname(os.path.abspath(__file__))
env = dict(child_environment(), CCL_ORCHESTRATOR_PID=str(os.getpid()))
child = subprocess.Popen(wrap([sys.executable, os.path.join(here, "print_lines.py"), "1"]), env=env,
                         stdout=subprocess.DEVNULL)
print(child.pid, flush=True)
time.sleep(600)
