"""The alerts as the UI reads and acknowledges them (``alerts``; the orchestrator raises them)."""

from __future__ import annotations

import json

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, notify_sql, port_errors
from ccl.ports import Acknowledged, Alert, IAlertStore

_COLUMNS = ", ".join(a.name for a in Alert.__attrs_attrs__)
_WHERE = {"open": "cleared_at IS NULL", "past": "cleared_at IS NOT NULL", "all": "true"}


@port_errors
@implementer(IAlertStore)
class AlertStore:
    def __init__(self, db: Database):
        self._db = db

    async def alerts(self, state: str, limit: int) -> list[Alert]:
        rows = await self._db.runQuery(
            f"SELECT {_COLUMNS} FROM alerts WHERE {_WHERE[state]} ORDER BY raised_at DESC, id DESC LIMIT %s",
            (limit,))
        return [Alert(*row) for row in rows]

    def acknowledge(self, alert_id: int, by: str) -> defer.Deferred:
        @defer.inlineCallbacks
        def acknowledge(cursor):
            yield cursor.execute(
                f"UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s"
                f" WHERE id = %s AND acknowledged_at IS NULL RETURNING {_COLUMNS}", (by, alert_id))
            row = cursor.fetchone()
            if row is not None:
                alert = Alert(*row)
                yield cursor.execute(notify_sql(), (json.dumps(
                    {"type": "alert", "event": "acknowledged", "id": alert.id, "rule": alert.rule,
                     "subject": alert.subject, "by": by}, ensure_ascii=False),))
                return Acknowledged(alert=alert)
            yield cursor.execute("SELECT acknowledged_by FROM alerts WHERE id = %s", (alert_id,))
            existing = cursor.fetchone()
            return Acknowledged() if existing is None else Acknowledged(earlier_by=existing[0])

        return self._db.runInteraction(acknowledge)
