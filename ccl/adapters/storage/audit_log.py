"""The audit trail in PostgreSQL (``audit_logs``)."""

from __future__ import annotations

import json
from typing import Any

import psycopg2
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


def append_now(dsn: str, actor: str, action: str, target: str | None, result: str, details: dict) -> None:
    """One audit row from a command-line tool (blocking, its own connection and transaction)."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO audit_logs (actor, action, target, result, details) VALUES (%s, %s, %s, %s, %s)",
                           (actor, action, target, result, json.dumps(details, ensure_ascii=False, default=str)))
    finally:
        connection.close()
