"""PostgreSQL through txpostgres, surviving server restarts.

Every connection has a DeadConnectionDetector: when PostgreSQL goes away the first queries
fail (ConnectionDead / OperationalError) and the connection reconnects in the background
with capped back-off. Callers that must not lose work retry (``retrying``). LISTEN is
re-issued after a reconnect, because the server forgets it.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any

import psycopg2
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import reconnection, retrying as txretrying, txpostgres

from zope.interface import implementer

from ccl.domain.events import EVENTS_CHANNEL
from ccl.ports import IDatabaseProbe, IEventFeed, StoreUnavailable

log = Logger()

#: Failures that mean "the database is unreachable right now; try again later".
UNAVAILABLE = (reconnection.ConnectionDead, psycopg2.OperationalError, psycopg2.InterfaceError)


def _lost_in_transaction(failure: Failure) -> Failure:
    """txpostgres reports a transaction whose connection died as RollbackFailed (the ROLLBACK
    failed too); give callers the original failure, so that they see one of UNAVAILABLE and
    retry or answer 503 as for any other outage."""
    if failure.check(txpostgres.RollbackFailed):
        original = getattr(failure.value, "originalFailure", None)
        if isinstance(original, Failure) and original.check(*UNAVAILABLE):
            return original
    return failure


def as_store_unavailable(failure: Failure) -> Failure:
    """Errback for what storage hands to outer layers: a database outage (one of UNAVAILABLE)
    becomes ``ports.StoreUnavailable``, which they may catch without knowing the driver."""
    failure = _lost_in_transaction(failure)
    if failure.check(*UNAVAILABLE):
        return Failure(StoreUnavailable(str(failure.value).strip() or type(failure.value).__name__))
    return failure


def _backoff():
    return txretrying.simpleBackoffIterator(initialDelay=0.5, maxDelay=5.0, factor=2.0, maxRetries=0, now=True)


class _Detector(reconnection.DeadConnectionDetector):
    """txpostgres' detector, but with a reconnect loop that can be stopped.

    The stock detector drops the Deferred of its retry loop, so a closed Database would keep
    a reconnect timer (and a half-open socket) alive until the next attempt.
    """

    _loop: defer.Deferred | None = None
    _stopped = False

    def startReconnecting(self, f):  # noqa: N802 (txpostgres' name)
        if self._stopped:
            return
        call = txretrying.RetryingCall(self.reconnect)
        call.reactor = self.reactor
        self._loop = call.start(self.reconnectionIterator())
        self._loop.addCallback(lambda _: self.connectionRecovered())
        self._loop.addErrback(self._loop_ended)

    def _loop_ended(self, failure) -> None:
        self._loop = None
        if not (self._stopped and failure.check(defer.CancelledError)):
            log.failure("database reconnection loop failed", failure)

    def stop(self) -> None:
        self._stopped = True
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()


def _connection(reactor) -> txpostgres.Connection:
    detector = _Detector(reconnectionIterator=_backoff, reactor=reactor)
    return txpostgres.Connection(reactor=reactor, detector=detector)


class _Pool(txpostgres.ConnectionPool):
    def __init__(self, reactor, dsn: str, size: int):
        self.reactor = reactor
        self.every_connection: list[txpostgres.Connection] = []  # ``connections`` lacks the busy ones
        super().__init__(None, dsn, min=size)

    def connectionFactory(self, reactor, cooperator):  # noqa: N802 (txpostgres' name)
        connection = _connection(reactor)
        self.every_connection.append(connection)
        return connection


class Database:
    """A pool of reconnecting connections plus LISTEN support.

    ``start()`` never fails: a database that is down at start-up is connected to when it
    comes up, and queries fail with one of ``UNAVAILABLE`` until then.
    """

    def __init__(self, reactor, dsn: str, size: int = 4):
        self._reactor = reactor
        self.dsn = dsn
        self._pool = _Pool(reactor, dsn, size)
        self._listener: txpostgres.Connection | None = None
        self._channels: dict[str, list[Callable[[dict | str], None]]] = {}
        self._ready = defer.Deferred()

    def start(self) -> defer.Deferred:
        """Connect every pooled connection; fires once all are up (maybe much later)."""
        attempts = []
        for connection in self._pool.connections:
            attempt = connection.connect(self.dsn)
            attempt.addErrback(self._retry_first_connect, connection)
            attempts.append(attempt)
        defer.gatherResults(attempts).addBoth(lambda _: self._ready.callback(self) if not self._ready.called else None)
        return self.when_ready()

    def _retry_first_connect(self, failure, connection):
        log.warn("database not reachable yet ({error}); retrying in the background", error=failure.getErrorMessage())
        connection.detector.checkForDeadConnection(failure)
        recovered = defer.Deferred()
        connection.detector.addRecoveryHandler(lambda: recovered.callback(None) if not recovered.called else None)
        return recovered

    def when_ready(self) -> defer.Deferred:
        done = defer.Deferred()
        self._ready.addBoth(lambda result: (done.callback(self), result)[1])
        return done

    def runQuery(self, *args, **kwargs) -> defer.Deferred:  # noqa: N802 (txpostgres' name)
        return self._pool.runQuery(*args, **kwargs)

    def runOperation(self, *args, **kwargs) -> defer.Deferred:  # noqa: N802
        return self._pool.runOperation(*args, **kwargs)

    def runInteraction(self, interaction, *args, **kwargs) -> defer.Deferred:  # noqa: N802
        return self._pool.runInteraction(interaction, *args, **kwargs).addErrback(_lost_in_transaction)

    # LISTEN / NOTIFY ---------------------------------------------------------------------

    def listen(self, channel: str, observer: Callable[[dict | str], None]) -> defer.Deferred:
        """Call ``observer`` with each payload on ``channel`` (JSON decoded when it is JSON)."""
        self._channels.setdefault(channel, []).append(observer)
        if self._listener is None:
            self._listener = _connection(self._reactor)
            self._listener.addNotifyObserver(self._dispatch)
            self._listener.detector.addRecoveryHandler(self._relisten)
            connecting = self._listener.connect(self.dsn)
            connecting.addErrback(self._retry_first_connect, self._listener)
            return connecting.addCallback(lambda _: self._relisten())
        if self._listener.detector.connectionIsDead:
            return defer.succeed(None)
        return self._listener.runOperation(f'LISTEN "{channel}"')

    def _relisten(self) -> defer.Deferred:
        return defer.gatherResults([self._listener.runOperation(f'LISTEN "{c}"') for c in self._channels])

    def _dispatch(self, notify) -> None:
        try:
            payload: dict | str = json.loads(notify.payload)
        except ValueError:
            payload = notify.payload
        for observer in self._channels.get(notify.channel, []):
            try:
                observer(payload)
            except Exception:
                log.failure("LISTEN observer for {channel} failed", channel=notify.channel)

    def close(self) -> None:
        """Close every connection and stop their reconnect loops (nothing is left scheduled)."""
        connections = list(self._pool.every_connection)
        if self._listener is not None:
            connections.append(self._listener)
        for connection in connections:
            connection.detector.stop()
            connection.detector.setReconnectable(_Closed())
            try:
                connection.close()
            except Exception:
                pass


class _Closed:
    """Stands in for a closed connection so that a pending reconnect does nothing."""

    def close(self) -> None:
        pass

    def connect(self, *args, **kwargs):
        return defer.succeed(None)


def retrying(reactor, operation: Callable[[], defer.Deferred], *, initial: float = 0.2, maximum: float = 5.0,
             what: str = "database operation") -> defer.Deferred:
    """Run ``operation`` until it succeeds, waiting between attempts while the database is unavailable.

    Only UNAVAILABLE failures are retried; anything else (a constraint violated, bad SQL) fails
    at once, because trying again would fail again.
    """
    delay = initial

    @defer.inlineCallbacks
    def attempt():
        nonlocal delay
        while True:
            try:
                result = yield operation()
                return result
            except UNAVAILABLE as error:
                log.warn("{what} failed, database unavailable ({error}); retrying in {delay:.1f}s",
                         what=what, error=str(error).strip() or type(error).__name__, delay=delay)
                yield task.deferLater(reactor, delay, lambda: None)
                delay = min(delay * 2, maximum)

    return attempt()


def notify_sql(channel: str = EVENTS_CHANNEL) -> str:
    """SQL to send a JSON event in the current transaction: pass json.dumps(payload) as the one parameter."""
    return f"SELECT pg_notify('{channel}', %s)"


def audit(db: Database, *, actor: str, action: str, target: str | None, result: str,
          details: dict[str, Any] | None = None, client_address: str | None = None) -> defer.Deferred:
    """Append one row to audit_logs (every control and admin action lands there)."""
    return db.runOperation(
        "INSERT INTO audit_logs (actor, client_address, action, target, result, details) VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, client_address, action, target, result, json.dumps(details or {}, ensure_ascii=False)),
    )


def port_errors(cls: type) -> type:
    """Class decorator for a storage adapter behind a port: every public method returns a
    Deferred whose database outages are ``ports.StoreUnavailable`` (as_store_unavailable), so
    the layers outside see the port's exceptions only."""
    for name, method in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(method):
            setattr(cls, name, _translating(method))
    return cls


def _translating(method: Callable[..., Any]) -> Callable[..., defer.Deferred]:
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if inspect.iscoroutinefunction(method):
            done = defer.ensureDeferred(method(*args, **kwargs))
        else:
            done = defer.maybeDeferred(method, *args, **kwargs)
        return done.addErrback(as_store_unavailable)

    return wrapper


@port_errors
@implementer(IDatabaseProbe)
class DatabaseProbe:
    def __init__(self, db: Database):
        self._db = db

    def ping(self) -> defer.Deferred:
        return self._db.runQuery("SELECT 1")


@implementer(IEventFeed)
class EventFeed:
    """The live events channel (EVENTS_CHANNEL) through the Database's one LISTEN connection."""

    def __init__(self, db: Database, channel: str = EVENTS_CHANNEL):
        self._db = db
        self._channel = channel

    def subscribe(self, observer: Callable[[dict | str], None]) -> defer.Deferred:
        return defer.maybeDeferred(self._db.listen, self._channel, observer)
