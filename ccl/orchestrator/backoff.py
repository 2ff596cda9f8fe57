"""When to restart a child that exited, and when to give up (pure, no Twisted).

supervisord's rule, made explicit: the first restart after a crash is immediate (a plant
cannot wait for a one-off crash), further quick crashes wait exponentially longer up to a
cap, a run of ``stable_after`` seconds forgets the past, and ``fatal_after`` quick crashes
in a row stop the spinning: the child is left ``fatal`` until an operator starts it.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Decision:
    fatal: bool
    delay: float = 0.0


@attrs.define
class RestartPolicy:
    restart_delay: float = 1.0
    restart_delay_max: float = 30.0
    stable_after: float = 10.0
    fatal_after: int = 5
    quick_crashes: int = 0

    def exited(self, run_seconds: float) -> Decision:
        """Record an unexpected exit after a run of ``run_seconds``; say what to do."""
        if run_seconds >= self.stable_after:
            self.quick_crashes = 0
        self.quick_crashes += 1 if run_seconds < self.stable_after else 0
        if self.quick_crashes >= self.fatal_after:
            return Decision(fatal=True)
        if self.quick_crashes <= 1:
            return Decision(fatal=False, delay=0.0)
        delay = self.restart_delay * 2 ** (self.quick_crashes - 2)
        return Decision(fatal=False, delay=min(delay, self.restart_delay_max))

    def reset(self) -> None:
        """An operator started the child: give it a fresh start."""
        self.quick_crashes = 0
