"""``forward_outbox`` in PostgreSQL: the durable side of forwarding to 고기원.

Reads are single queries. Writes (sent, delivered, refused) are gathered while one write
transaction is under way and go out together in the next, started no sooner than
``write_interval`` after the previous one: a thousand ACKs a second cost about twenty
transactions, not hundreds (each a commit with its WAL fsync, and reactor time). Nothing
waits on these writes but the record: an entry whose delivery is not written yet is only
sent again after a restart. The Deferred of each write fires once its transaction has
committed. An entry sent and delivered within one batch is one UPDATE, not two. Everything retries while PostgreSQL is down: the outbox state
in the database is the truth, and a write not yet made only means a resend later.
"""

from __future__ import annotations

import json

import attrs
from twisted.internet import defer
from txpostgres.txpostgres import RollbackFailed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ccl.adapters.storage.postgres import UNAVAILABLE, Database
from ccl.ports import IOutboxStore, OutboxEntry

log = Logger()

_FETCH = """
SELECT id, channel, tc_code, sequence_no, raw, extract(epoch FROM created_at)::float8, attempts
  FROM forward_outbox
 WHERE channel = %s AND state = 'pending' AND id > %s AND id < %s AND NOT (id = ANY(%s::bigint[]))
 ORDER BY id
 LIMIT %s
"""

_SENT = """
UPDATE forward_outbox AS f
   SET attempts = f.attempts + v.n,
       first_sent_at = coalesce(f.first_sent_at, to_timestamp(v.first_at)),
       last_sent_at = to_timestamp(v.last_at)
  FROM unnest(%s::bigint[], %s::int[], %s::float8[], %s::float8[]) AS v(id, n, first_at, last_at)
 WHERE f.id = v.id
"""

_DELIVERED = """
UPDATE forward_outbox AS f
   SET state = 'delivered', delivered_at = to_timestamp(v.at)
  FROM unnest(%s::bigint[], %s::float8[]) AS v(id, at)
 WHERE f.id = v.id AND f.state = 'pending'
"""

# Sent and delivered in the same batch (the usual case): one row version instead of two.
_SENT_DELIVERED = """
UPDATE forward_outbox AS f
   SET attempts = f.attempts + v.n,
       first_sent_at = coalesce(f.first_sent_at, to_timestamp(v.first_at)),
       last_sent_at = to_timestamp(v.last_at),
       state = CASE WHEN f.state = 'pending' THEN 'delivered' ELSE f.state END,
       delivered_at = CASE WHEN f.state = 'pending' THEN to_timestamp(v.at) ELSE f.delivered_at END
  FROM unnest(%s::bigint[], %s::int[], %s::float8[], %s::float8[], %s::float8[]) AS v(id, n, first_at, last_at, at)
 WHERE f.id = v.id
"""

_REFUSED = """
UPDATE forward_outbox AS f
   SET state = 'refused', refused_at = to_timestamp(v.at), refused_code = v.code
  FROM unnest(%s::bigint[], %s::float8[], %s::text[]) AS v(id, at, code)
 WHERE f.id = v.id AND f.state = 'pending'
"""

_BACKLOG = """
SELECT channel, count(*), extract(epoch FROM min(created_at))::float8
  FROM forward_outbox WHERE state = 'pending' GROUP BY channel
"""

_LINK = """
INSERT INTO link_status (link, kind, connected, last_seen_at, alive_count, details, updated_at)
VALUES (%s, %s, %s, to_timestamp(%s), %s, %s::jsonb, now())
ON CONFLICT (link) DO UPDATE
   SET kind = EXCLUDED.kind, connected = EXCLUDED.connected, last_seen_at = EXCLUDED.last_seen_at,
       alive_count = EXCLUDED.alive_count, details = EXCLUDED.details, updated_at = now()
"""

_REJECTED = """
INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, tc_code, sequence_no, raw)
VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)
"""

MAX_ID = 2 ** 63 - 1


@attrs.define
class _Pending:
    sent: dict = attrs.Factory(dict)  # id -> [count, first_at, last_at]
    delivered: dict = attrs.Factory(dict)  # id -> at
    refused: dict = attrs.Factory(dict)  # id -> (at, code)
    waiters: list = attrs.Factory(list)  # Deferreds fired after the commit

    def __bool__(self) -> bool:
        return bool(self.sent or self.delivered or self.refused)


@implementer(IOutboxStore)
class PgOutboxStore:
    def __init__(self, reactor, db: Database, write_interval: float = 0.05) -> None:
        self._reactor = reactor
        self._db = db
        self._write_interval = write_interval
        self._last_write: float | None = None
        self._next = _Pending()
        self._writing: defer.Deferred | None = None
        self._sleeping: dict = {}  # IDelayedCall of a retry -> the Deferred it will serve
        self._closed = False

    def _retrying(self, operation, what: str) -> defer.Deferred:
        """Run ``operation`` until the database answers, waiting 0.2 s doubling to 5 s between
        attempts while it is unavailable. ``close()`` ends the waits (never a query under way)."""
        result: defer.Deferred = defer.Deferred()
        delay = 0.2

        def attempt():
            if self._closed:
                result.errback(defer.CancelledError())
                return
            defer.maybeDeferred(operation).addCallbacks(result.callback, failed)

        def failed(failure):
            nonlocal delay
            if self._closed:
                result.errback(defer.CancelledError())
            elif _unavailable(failure):
                log.warn("{what} failed, database unavailable ({error}); retrying in {delay:.1f}s",
                         what=what, error=failure.getErrorMessage().strip() or failure.type.__name__, delay=delay)
                call = self._reactor.callLater(delay, lambda: (self._sleeping.pop(call, None), attempt()))
                self._sleeping[call] = result
                delay = min(delay * 2, 5.0)
            else:
                result.errback(failure)

        attempt()
        return result

    def close(self) -> None:
        """Give up what still waits to retry (the service is stopping; the outbox keeps it)."""
        self._closed = True
        sleeping, self._sleeping = self._sleeping, {}
        for call, result in sleeping.items():
            if call.active():
                call.cancel()
            if not result.called:
                result.errback(defer.CancelledError())

    # Reads -------------------------------------------------------------------------------

    def fetch_pending(self, channel: str, after_id: int, limit: int, before_id: int | None = None,
                      exclude: list[int] | None = None) -> defer.Deferred:
        params = (channel, after_id, before_id or MAX_ID, list(exclude or []), limit)
        found = self._retrying(lambda: self._db.runQuery(_FETCH, params), f"reading the {channel} outbox")
        return found.addCallback(lambda rows: [
            OutboxEntry(id=r[0], channel=r[1], tc_code=r[2].strip(), sequence_no=r[3], raw=bytes(r[4]),
                        created_at=r[5], attempts=r[6]) for r in rows])

    def backlog(self) -> defer.Deferred:
        """{channel: (pending count, created_at of the oldest pending)}; fails while the database is down."""
        return self._db.runQuery(_BACKLOG).addCallback(lambda rows: {r[0]: (r[1], r[2]) for r in rows})

    # Writes ------------------------------------------------------------------------------

    def record_sent(self, entry_id: int, at: float) -> defer.Deferred:
        slot = self._next.sent.get(entry_id)
        if slot is None:
            self._next.sent[entry_id] = [1, at, at]
        else:
            slot[0] += 1
            slot[2] = at
        return self._schedule()

    def mark_delivered(self, entry_id: int, at: float) -> defer.Deferred:
        self._next.delivered[entry_id] = at
        return self._schedule()

    def mark_refused(self, entry_id: int, result_code: str, at: float) -> defer.Deferred:
        self._next.refused[entry_id] = (at, result_code)
        return self._schedule()

    def _schedule(self) -> defer.Deferred:
        if self._closed:
            self._next = _Pending()
            return defer.fail(defer.CancelledError())
        done: defer.Deferred = defer.Deferred()
        self._next.waiters.append(done)
        if self._writing is None:
            # Let the rest of this reactor turn (and of write_interval) add to the same transaction.
            self._writing = defer.Deferred()
            self._reactor.callLater(self._wait(), self._write)
        return done

    def _wait(self) -> float:
        if self._last_write is None:
            return 0.0
        return max(0.0, self._last_write + self._write_interval - self._reactor.seconds())

    def _write(self) -> None:
        if self._closed:
            # Stopping: what is not written is sent again after the restart.
            batch, self._next = self._next, _Pending()
            for waiter in batch.waiters:
                waiter.errback(defer.CancelledError())
            writing, self._writing = self._writing, None
            writing.callback(None)
            return
        self._last_write = self._reactor.seconds()
        batch, self._next = self._next, _Pending()
        written = self._retrying(lambda: self._db.runInteraction(_apply, batch), "updating the outbox")

        def finished(result):
            for waiter in batch.waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)
            writing, self._writing = self._writing, None
            if self._next and not self._closed:
                self._writing = defer.Deferred()
                self._reactor.callLater(self._wait(), self._write)
            writing.callback(None)

        written.addBoth(finished)

    def flush(self) -> defer.Deferred:
        """Fires when what has been handed in so far is committed."""
        if self._writing is None:
            return defer.succeed(None) if not self._next else self._schedule()
        return self._schedule()

    # Link status and rejected telegrams ---------------------------------------------------

    def upsert_link(self, link: str, *, kind: str, connected: bool, last_seen_at: float | None,
                    alive_count: int | None, details: dict) -> defer.Deferred:
        """Best effort: a status row missed while the database is down is rewritten by the next."""
        params = (link, kind, connected, last_seen_at, alive_count, json.dumps(details, ensure_ascii=False))
        return self._db.runOperation(_LINK, params).addErrback(_ignore_unavailable, f"link_status {link}")

    def reject(self, *, received_at: float, peer: str | None, listener: str, result_code: str, reason: str,
               tc_code: str | None, sequence_no: int | None, raw: bytes) -> defer.Deferred:
        """Keep a refused telegram (or garbage) whole; retried until the database takes it."""
        params = (received_at, peer, listener, result_code, reason, tc_code, sequence_no, raw)
        return self._retrying(lambda: self._db.runOperation(_REJECTED, params), "keeping a rejected telegram")


@defer.inlineCallbacks
def _apply(cursor, batch: _Pending):
    # txpostgres cursors answer with Deferreds.
    both = [i for i in batch.delivered if i in batch.sent]
    if both:
        yield cursor.execute(_SENT_DELIVERED, (both, [batch.sent[i][0] for i in both], [batch.sent[i][1] for i in both],
                                               [batch.sent[i][2] for i in both], [batch.delivered[i] for i in both]))
    sent = [i for i in batch.sent if i not in batch.delivered]
    if sent:
        yield cursor.execute(_SENT, (sent, [batch.sent[i][0] for i in sent], [batch.sent[i][1] for i in sent],
                               [batch.sent[i][2] for i in sent]))
    delivered = [i for i in batch.delivered if i not in batch.sent]
    if delivered:
        yield cursor.execute(_DELIVERED, (delivered, [batch.delivered[i] for i in delivered]))
    if batch.refused:
        ids = list(batch.refused)
        yield cursor.execute(_REFUSED, (ids, [batch.refused[i][0] for i in ids], [batch.refused[i][1] for i in ids]))


def _unavailable(failure: Failure) -> bool:
    """The database is away: one of UNAVAILABLE, or a transaction whose rollback failed
    because the connection died under it (txpostgres wraps that in RollbackFailed)."""
    if failure.check(*UNAVAILABLE):
        return True
    if failure.check(RollbackFailed):
        original = getattr(failure.value, "originalFailure", None)
        return isinstance(original, Failure) and original.check(*UNAVAILABLE) is not None
    return False


def _ignore_unavailable(failure, what: str) -> None:
    failure.trap(*UNAVAILABLE)
    log.debug("{what} not written, database unavailable", what=what)
