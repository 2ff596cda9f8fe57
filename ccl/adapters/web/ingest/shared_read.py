"""One run of an expensive read at a time, shared by everyone who asks while it runs.

``GET /stats`` reads a whole table (a third of a second at a million defects). Several Jetson
boxes polling it at once would each start their own scan and pile up on PostgreSQL's CPU;
with this, whoever asks while a scan is under way gets that scan's answer. Nothing is kept
after it finishes: the next request reads afresh, so a figure is never older than the read
that was already running when it was asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


class SharedRead:
    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read
        self._waiting: list[defer.Deferred] | None = None  # None: no read under way
        self.runs = 0

    def __call__(self) -> defer.Deferred:
        waiter: defer.Deferred = defer.Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
            return waiter
        self._waiting = [waiter]
        self.runs += 1
        defer.maybeDeferred(self._read).addBoth(self._finished)
        return waiter

    @property
    def waiting(self) -> int:
        """How many callers wait for the read under way (0: none under way)."""
        return len(self._waiting or ())

    def _finished(self, result: Any) -> None:
        waiting, self._waiting = self._waiting or [], None
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
