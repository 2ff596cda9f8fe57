"""Use case: receive a box's inspection heartbeat (POST /inspection/heartbeat).

Validated, stored once per (camera, period), and counted as a sign of life of the camera's
link. A retry of a stored heartbeat (a lost reply) is answered with the stored row; a
different report for the same camera and period is refused, never silently overwritten.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
from twisted.internet.defer import inlineCallbacks

from ccl.application.jetson_links import LinkTracker
from ccl.domain.ingest.heartbeats import Heartbeat, validate_heartbeat
from ccl.ports import IHeartbeats, StoredHeartbeat


class HeartbeatConflict(Exception):
    """A heartbeat of this camera and period is stored with other figures (``stored``)."""

    def __init__(self, stored: StoredHeartbeat):
        super().__init__("a different heartbeat of this camera and period is stored")
        self.stored = stored


@attrs.define
class HeartbeatReceiver:
    heartbeats: IHeartbeats
    links: LinkTracker
    max_period: timedelta

    @inlineCallbacks
    def receive(self, body: object, *, address: str | None = None):
        """Deferred[(StoredHeartbeat, created)]; fails with InvalidHeartbeat or HeartbeatConflict."""
        heartbeat: Heartbeat = validate_heartbeat(body, max_period=self.max_period)
        stored, created = yield self.heartbeats.store(heartbeat)
        if not created and stored.heartbeat != heartbeat:
            raise HeartbeatConflict(stored)
        self.links.seen(heartbeat.camera_id, "heartbeat", address=address, box_id=heartbeat.box_id)
        return stored, created
