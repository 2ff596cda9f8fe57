"""The Jetson boxes' bearer tokens in ``ingest_tokens`` (made by ``ccl ingest-token``)."""

from __future__ import annotations

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
