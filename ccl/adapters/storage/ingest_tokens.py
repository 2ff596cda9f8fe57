"""The Jetson boxes' bearer tokens in ``ingest_tokens``: checked by the services (``TokenRecords``),
managed by ``ccl ingest-token`` (the blocking functions below, each one audited transaction)."""

from __future__ import annotations

from datetime import datetime

import attrs
from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import as_store_unavailable
from ccl.ports import IIngestTokens


@implementer(IIngestTokens)
class TokenRecords:
    def __init__(self, db):
        self._db = db

    def actor_for(self, digest: bytes) -> defer.Deferred:
        return self._db.runQuery(
            "UPDATE ingest_tokens SET last_used_at = now() WHERE token_hash = %s AND revoked_at IS NULL RETURNING name",
            (digest,)).addCallbacks(lambda rows: rows[0][0] if rows else None, as_store_unavailable)


# Managing the tokens (``ccl ingest-token``; blocking, on a psycopg2 connection) -------------

@attrs.frozen
class TokenRow:
    """A token as ``ccl ingest-token list`` shows it (never the token itself)."""

    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _audit(cursor, actor: str, action: str, target: str, result: str) -> None:
    cursor.execute("INSERT INTO audit_logs (actor, action, target, result, details) VALUES (%s, %s, %s, %s, '{}')",
                   (actor, action, target, result))


def create_token(connection, name: str, digest: bytes, *, actor: str) -> bool:
    """Store a new token's digest under ``name`` (False: the name is taken); audited either way."""
    with connection, connection.cursor() as cursor:
        cursor.execute("INSERT INTO ingest_tokens (name, token_hash) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
                       " RETURNING id", (name, digest))
        created = cursor.fetchone() is not None
        _audit(cursor, actor, "ingest_token.create", name, "ok" if created else "exists")
    return created


def list_tokens(connection) -> list[TokenRow]:
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT name, created_at, last_used_at, revoked_at FROM ingest_tokens ORDER BY name")
        return [TokenRow(*row) for row in cursor.fetchall()]


def revoke_token(connection, name: str, *, actor: str) -> bool:
    """Refuse the active token ``name`` from now on (False: there is none); audited either way."""
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE ingest_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL"
                       " RETURNING id", (name,))
        done = cursor.fetchone() is not None
        _audit(cursor, actor, "ingest_token.revoke", name, "ok" if done else "not_found")
    return done
