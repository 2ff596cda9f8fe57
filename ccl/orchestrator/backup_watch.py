"""Readings of ``pgbackrest info`` for the backup.stale alert, taken in a thread.

``pgbackrest info`` is a subprocess that reads the repository (a second disk, maybe a slow
share): it never runs on the reactor. The alert rule compares the last reading with its own
clock; before backups are set up there is nothing to read and no alert.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from twisted.internet import defer, task, threads
from twisted.logger import Logger

from ccl.domain.backup import BackupError, StanzaInfo, staleness

log = Logger()


class BackupWatch:
    def __init__(self, reactor, read: Callable[[], StanzaInfo | None], interval: float, max_age: timedelta,
                 in_thread: Callable = threads.deferToThread):
        """``read``: the stanza's info, or None when backups are not set up (blocking)."""
        self._read = read
        self._interval = interval
        self._in_thread = in_thread
        self.max_age = max_age
        self.info: StanzaInfo | None = None
        self.error: str | None = None
        self.set_up = False
        self._loop = task.LoopingCall(self.refresh)
        self._loop.clock = reactor

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def refresh(self) -> defer.Deferred:
        """Read once (in a thread); fires when the reading is kept."""
        d = self._in_thread(self._read)

        def kept(info):
            self.set_up = info is not None
            self.info, self.error = info, None

        def failed(failure):
            failure.trap(BackupError, OSError, ValueError)
            self.set_up = True
            self.error = f"cannot read pgbackrest info: {failure.getErrorMessage()}"
            log.warn("backup watch: {error}", error=self.error)

        return d.addCallbacks(kept, failed)

    def stale(self, now_seconds: float) -> str | None:
        """Why the backups are stale at ``now_seconds`` (epoch), or None."""
        if not self.set_up:
            return None
        if self.info is None:
            return self.error
        return staleness(self.info, datetime.fromtimestamp(now_seconds, timezone.utc), self.max_age)
