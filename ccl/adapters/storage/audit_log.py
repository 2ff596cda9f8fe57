"""The audit trail in PostgreSQL (``audit_logs``)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, audit, port_errors
from ccl.ports import Actor, AuditEntry, AuditQuery, IAuditLog


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@port_errors
@implementer(IAuditLog)
class AuditLog:
    def __init__(self, db: Database):
        self._db = db

    def append(self, actor: Actor, action: str, target: str | None, result: str,
               details: dict[str, Any] | None = None) -> defer.Deferred:
        return audit(self._db, actor=actor.username, action=action, target=target, result=result, details=details,
                     client_address=actor.client_address)

    async def search(self, query: AuditQuery) -> list[AuditEntry]:
        where, params = [], []
        if query.actor:
            where.append("actor = %s")
            params.append(query.actor)
        if query.action:
            # Prefix match: "user." finds user.create, user.update, ...
            where.append("action LIKE %s")
            params.append(_like_prefix(query.action))
        if query.since:
            where.append("at >= %s")
            params.append(query.since)
        if query.before:
            where.append("at < %s")
            params.append(query.before)
        sql = ("SELECT id, at, actor, client_address, action, target, result, details FROM audit_logs"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY at DESC, id DESC LIMIT %s OFFSET %s")
        rows = await self._db.runQuery(sql, (*params, query.limit, query.offset))
        return [AuditEntry(*row) for row in rows]
