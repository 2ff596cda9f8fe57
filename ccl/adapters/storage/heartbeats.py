"""The boxes' inspection heartbeats in ``inspection_heartbeats`` (schema/091)."""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import as_store_unavailable
from ccl.domain.events import EVENTS_CHANNEL as EVENTS
from ccl.domain.ingest.heartbeats import Heartbeat
from ccl.ports import IHeartbeats, StoredHeartbeat

_COLUMNS = "id, camera_id, box_id, period_start, period_end, frames_inspected, frames_expected, received_at"

#: The event of a stored heartbeat (built by PostgreSQL from the row ``ins``): live tracking
#: recomputes the coverage of the coils its period touches (docs/tracking.md).
_EVENT_SQL = ("json_build_object('table', 'inspection_heartbeats', 'id', ins.id, 'camera_id', ins.camera_id,"
              " 'box_id', ins.box_id, 'period_start', ins.period_start, 'period_end', ins.period_end,"
              " 'frames_inspected', ins.frames_inspected, 'frames_expected', ins.frames_expected)::text")

#: Insert (announcing it on ccl_events), or find the row of the same camera and period. Both in
#: one statement: the second part sees the table as before the insert, so it finds a row only
#: when the insert did nothing (a retry: no second event).
_STORE = f"""
WITH ins AS (
    INSERT INTO inspection_heartbeats (camera_id, box_id, period_start, period_end, frames_inspected, frames_expected)
    VALUES (%(camera_id)s, %(box_id)s, %(period_start)s, %(period_end)s, %(frames_inspected)s, %(frames_expected)s)
    ON CONFLICT (camera_id, period_start, period_end) DO NOTHING
    RETURNING {_COLUMNS})
SELECT true, {_COLUMNS}, pg_notify('{EVENTS}', {_EVENT_SQL}) FROM ins
UNION ALL
SELECT false, {_COLUMNS}, NULL FROM inspection_heartbeats
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
                created, row_id, camera_id, box_id, start, end, inspected, expected, received_at, _ = rows[0]
                stored = Heartbeat(camera_id, box_id, start, end, inspected, expected)
                return StoredHeartbeat(row_id, stored, received_at), created
            # Neither: the same heartbeat was being stored by a concurrent request, committed
            # after this statement began. Asked again, the row is there.
        raise RuntimeError("heartbeat neither stored nor found")
