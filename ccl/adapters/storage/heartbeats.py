"""The boxes' inspection heartbeats in ``inspection_heartbeats`` (schema/091)."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import as_store_unavailable
from ccl.domain.ingest.heartbeats import Heartbeat
from ccl.ports import IHeartbeats, StoredHeartbeat

_COLUMNS = "id, camera_id, box_id, period_start, period_end, frames_inspected, frames_expected, received_at"

#: Insert, or find the row of the same camera and period. Both in one statement: the second
#: part sees the table as before the insert, so it finds a row only when the insert did nothing.
_STORE = f"""
WITH ins AS (
    INSERT INTO inspection_heartbeats (camera_id, box_id, period_start, period_end, frames_inspected, frames_expected)
    VALUES (%(camera_id)s, %(box_id)s, %(period_start)s, %(period_end)s, %(frames_inspected)s, %(frames_expected)s)
    ON CONFLICT (camera_id, period_start, period_end) DO NOTHING
    RETURNING {_COLUMNS})
SELECT true, {_COLUMNS} FROM ins
UNION ALL
SELECT false, {_COLUMNS} FROM inspection_heartbeats
 WHERE camera_id = %(camera_id)s AND period_start = %(period_start)s AND period_end = %(period_end)s"""


@implementer(IHeartbeats)
class HeartbeatRecords:
    def __init__(self, db):
        self._db = db

    @defer.inlineCallbacks
    def store(self, heartbeat: Heartbeat):
        params = {"camera_id": heartbeat.camera_id, "box_id": heartbeat.box_id,
                  "period_start": heartbeat.period_start, "period_end": heartbeat.period_end,
                  "frames_inspected": heartbeat.frames_inspected, "frames_expected": heartbeat.frames_expected}
        for _attempt in range(3):
            rows = yield self._db.runQuery(_STORE, params).addErrback(as_store_unavailable)
            if rows:
                created, row_id, camera_id, box_id, start, end, inspected, expected, received_at = rows[0]
                stored = Heartbeat(camera_id, box_id, start, end, inspected, expected)
                return StoredHeartbeat(row_id, stored, received_at), created
            # Neither: the same heartbeat was being stored by a concurrent request, committed
            # after this statement began. Asked again, the row is there.
        raise RuntimeError("heartbeat neither stored nor found")
