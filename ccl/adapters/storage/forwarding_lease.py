"""The forwarding lease of two ccl-mes: a session-level PostgreSQL advisory lock.

Each ccl-mes keeps one dedicated connection (not from the pool: a session-level lock
belongs to its connection, and a pooled one would hand it to whichever query comes next)
and tries ``pg_try_advisory_lock`` on it every ``interval`` seconds. The holder checks the
same connection as often; when a check fails or takes longer than ``interval`` it reports
the lease lost at once and reconnects. The server releases the lock when the holder's
session ends: at once when the process dies (its socket closes), within the TCP
keepalive time set on the session when the machine or the network goes away. The other
ccl-mes then takes it on its next try: within seconds.

The DSN is the multi-host one: after a promotion the lock is taken on the new primary.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, task
from twisted.logger import Logger
from txpostgres import txpostgres
from zope.interface import implementer

from ccl.ports import IForwardingLease

log = Logger()

#: The advisory lock key: "고기" (U+ACE0 U+AE30) — any constant no other part of ours uses.
LEASE_KEY = 0xACE0AE30

#: Seconds without an answer after which the server drops a vanished holder's session
#: (idle + interval * count), so that the other takes over.
_KEEPALIVES = "SET tcp_keepalives_idle = 3; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3"


@implementer(IForwardingLease)
class AdvisoryLease:
    def __init__(self, reactor, dsn: str, *, interval: float = 1.0, key: int = LEASE_KEY) -> None:
        self._reactor = reactor
        self._dsn = dsn
        self._interval = interval
        self._key = key
        self._connection: txpostgres.Connection | None = None
        self._loop: task.LoopingCall | None = None
        self._gained: Callable[[], None] = lambda: None
        self._lost: Callable[[], None] = lambda: None
        self._busy = False
        self.held = False

    def start(self, gained: Callable[[], None], lost: Callable[[], None]) -> None:
        self._gained, self._lost = gained, lost
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self._reactor
        self._loop.start(self._interval, now=True)

    def stop(self) -> defer.Deferred:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._set_lost("stopping")
        self._close()  # the session ends: the server releases the lock
        return defer.succeed(None)

    @defer.inlineCallbacks
    def _tick(self):
        if self._busy:
            return
        self._busy = True
        try:
            if self._connection is None:
                connection = txpostgres.Connection(reactor=self._reactor)
                self._connection = connection
                yield self._timed(connection.connect(self._dsn))
                yield self._timed(connection.runOperation(_KEEPALIVES))
            if self.held:
                yield self._timed(self._connection.runQuery("SELECT 1"))
            else:
                rows = yield self._timed(self._connection.runQuery("SELECT pg_try_advisory_lock(%s)", (self._key,)))
                if rows[0][0] and self._loop is not None:
                    self.held = True
                    log.info("forwarding lease taken: this ccl-mes forwards to 고기원")
                    self._gained()
        except Exception as error:
            self._set_lost(str(error).strip() or type(error).__name__)
            self._close()
        finally:
            self._busy = False

    def _timed(self, deferred: defer.Deferred) -> defer.Deferred:
        return deferred.addTimeout(max(self._interval, 1.0) * 2, self._reactor)

    def _set_lost(self, why: str) -> None:
        if self.held:
            self.held = False
            log.warn("forwarding lease lost ({why}): this ccl-mes stops forwarding to 고기원", why=why)
            try:
                self._lost()
            except Exception:
                log.failure("stopping forwarding after the lease was lost failed")

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass
