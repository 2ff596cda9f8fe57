"""``python -I -c <this file> SIGNAL USER COMMAND...``: exec COMMAND, dying with the orchestrator.

Linux's parent-death signal makes the kernel send SIGNAL to the child when the orchestrator
dies, even by SIGKILL, so no service is ever left running without its monitor. It survives
``exec`` but a change of user clears it, so the user (``-`` for none; ``postgres`` for the
local database when we run as root) is switched here first, then the signal is set. The
interpreter is already loaded by then, so the user need not be able to read it.
"""

import ctypes
import os
import pwd
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    signame, user, command = argv[0], argv[1], argv[2:]
    parent = os.environ.pop("CCL_ORCHESTRATOR_PID", "")
    if user != "-":
        account = pwd.getpwnam(user)
        os.initgroups(user, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
        os.environ["HOME"] = account.pw_dir
        os.environ["USER"] = os.environ["LOGNAME"] = user
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(getattr(signal, f"SIG{signame}")), 0, 0, 0)
        # The orchestrator may have died before prctl: then nobody would ever signal us.
        if parent and os.getppid() != int(parent):
            sys.exit(f"exec_child: orchestrator {parent} is gone; not starting {command[0]}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
