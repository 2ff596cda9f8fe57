"""Waiting for something to become true in a trial test, without hanging the suite."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, reactor, task


@defer.inlineCallbacks
def wait_for(predicate: Callable[[], object], what: str = "condition", timeout: float = 30.0,
             interval: float = 0.02):
    """Poll ``predicate`` until it is true and fire with its value; fail (not hang) after
    ``timeout`` seconds, naming ``what``."""
    deadline = reactor.seconds() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        yield task.deferLater(reactor, interval, lambda: None)
