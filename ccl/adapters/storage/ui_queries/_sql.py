"""Small helpers shared by the UI read queries.

Each query asks PostgreSQL for JSON (``json_agg``/``row_to_json``): one round trip, rows
come back as dicts with JSON-ready values (timestamps as ISO 8601 with offset, numerics as
numbers), which is what the pages and the JSON endpoints hand on.
"""

from __future__ import annotations

from twisted.internet import defer

#: The plant's clock: "today" and the daily buckets of the statistics are days in Korea.
PLANT_TZ = "Asia/Seoul"


def rows(db, sql: str, params: tuple | dict = ()) -> defer.Deferred:
    """Run ``sql`` (a SELECT) and fire with a list of dicts, one per row."""
    wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) q"
    return db.runQuery(wrapped, params).addCallback(lambda result: result[0][0])


def rows_without_jit(db, sql: str, params: tuple | dict = (), *, wrap: bool = True) -> defer.Deferred:
    """``rows`` with JIT compilation off for this one statement. Aggregates over many rows get
    cost estimates that switch JIT on, and compiling takes longer (~100 ms) than the query."""
    wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) q" if wrap else sql

    @defer.inlineCallbacks
    def interaction(cursor):
        yield cursor.execute("SET LOCAL jit = off")
        yield cursor.execute(wrapped, params)
        found = cursor.fetchall()
        return found[0][0] if wrap else found

    return db.runInteraction(interaction)


def one(db, sql: str, params: tuple | dict = ()) -> defer.Deferred:
    """Like ``rows`` for a query of at most one row: fires with a dict or None."""
    return rows(db, sql, params).addCallback(lambda found: found[0] if found else None)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with the user's % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def gather(**named: defer.Deferred) -> defer.Deferred:
    """Fire with a dict of the named results once all have fired (first failure wins)."""
    keys = list(named)
    done = defer.gatherResults([named[k] for k in keys], consumeErrors=True)
    done.addErrback(lambda failure: failure.value.subFailure)
    return done.addCallback(lambda values: dict(zip(keys, values)))
