"""Thumbnails for the UI, made one at a time in the background after the upload was answered.

An upload is acknowledged once its files and rows are safe; the thumbnail is derived data, so
it never holds the Jetson up. The queue is bounded; what does not fit (or what a restart lost)
is found again by ``catch_up``, which looks for rows without a thumbnail_path.

Thumbnails also give way to uploads: decoding two images costs about as much CPU as receiving
them, so while uploads keep coming (one in flight, or one ended less than ``yield_seconds``
ago) at most one thumbnail is made every ``yield_seconds``; the queue catches up at full
speed once the line pauses. Until a thumbnail exists the UI makes one itself when viewed.
"""

from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from zope.interface import implementer

from ccl.adapters.storage.image_store import ImageStore
from ccl.ports import IThumbnails

log = Logger()


@implementer(IThumbnails)
class Thumbnailer:
    def __init__(self, store: ImageStore, db, max_backlog: int = 10_000, *, clock=None, yield_seconds: float = 0.5):
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._yield_seconds = yield_seconds
        self._uploads = 0
        self._last_upload = float("-inf")
        self._delayed = None
        self._turn = False
        self._store = store
        self._db = db
        self._max_backlog = max_backlog
        self._queue: deque = deque()
        self._queued: set[int] = set()
        self._failed: set[int] = set()
        self._running = False
        self._waiters: list[defer.Deferred] = []
        self.made = 0
        self.dropped = 0

    def request(self, image_id: int, kind: str, filename: str) -> None:
        if image_id in self._queued or image_id in self._failed:
            return
        if len(self._queue) >= self._max_backlog:
            self.dropped += 1  # catch_up finds it later
            return
        self._queue.append((image_id, kind, filename))
        self._queued.add(image_id)
        self._next()

    def upload_started(self) -> None:
        self._uploads += 1

    def upload_finished(self) -> None:
        self._uploads -= 1
        self._last_upload = self._clock.seconds()

    def _busy(self) -> bool:
        # Counted from the end of the last upload too: the next one is often still being received.
        return self._uploads > 0 or self._clock.seconds() - self._last_upload < self._yield_seconds

    def _take_turn(self) -> None:
        self._delayed = None
        self._turn = True
        self._next()

    def backlog(self) -> int:
        return len(self._queue) + (1 if self._running else 0)

    def idle(self) -> defer.Deferred:
        """Fires when the queue is empty (tests and benchmarks wait for it)."""
        if not self._running and not self._queue:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def _next(self) -> None:
        if self._running or self._delayed is not None:
            return
        if not self._queue:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        if not self._turn and self._busy():
            # Uploads first: one thumbnail per yield_seconds while they keep coming.
            self._delayed = self._clock.callLater(self._yield_seconds, self._take_turn)
            return
        self._turn = False
        self._running = True
        image_id, kind, filename = self._queue.popleft()

        def made(path):
            if path is None:
                return None  # purged meanwhile
            self.made += 1
            return self._db.runOperation("UPDATE images SET thumbnail_path = %s WHERE id = %s", (str(path), image_id))

        def failed(failure):
            log.warn("no thumbnail for {kind} image {filename}: {error}", kind=kind, filename=filename,
                     error=failure.getErrorMessage())
            if len(self._failed) < 100_000:
                self._failed.add(image_id)

        def done(_):
            self._queued.discard(image_id)
            self._running = False
            self._next()

        deferToThread(self._store.make_thumbnail, kind, filename).addCallback(made).addErrback(failed).addBoth(done)

    def catch_up(self, limit: int = 1000) -> defer.Deferred:
        """Queue the newest images that have no thumbnail yet."""
        def queue(rows):
            for image_id, kind, filename in rows:
                self.request(image_id, kind, filename)

        def failed(failure):
            log.warn("thumbnail catch-up skipped: {error}", error=failure.getErrorMessage())

        return self._db.runQuery("SELECT id, kind, filename FROM images WHERE thumbnail_path IS NULL"
                                 " AND purged_at IS NULL ORDER BY id DESC LIMIT %s", (limit,)
                                 ).addCallbacks(queue, failed)
