"""Live coil tracking, as a component of ccl-defects (docs/tracking.md, "Where it runs").

It LISTENs to ``ccl_events`` (every stored telegram, defect and image is announced there) and
places what is stored as it arrives. Hosted by ccl-defects: the defects, the bulk of the
work, are born there, and the MES service stays free of it (a fault here never touches the
MES link). Off with ``[tracking] live = false``; ``ccl tracking rebuild`` works either way.
"""

from __future__ import annotations

from twisted.application import service

from ccl.domain.events import EVENTS_CHANNEL as EVENTS
from ccl.adapters.storage.tracking_store import TrackingRecords
from ccl.application.tracking import LiveTracker
from ccl.config import Config
from ccl.domain.tracking.settings import TrackingSettings


class TrackingComponent(service.Service):
    name = "tracking"

    def __init__(self, db, tracker: LiveTracker):
        self.db = db
        self.tracker = tracker

    def startService(self):  # noqa: N802 (twisted's name)
        super().startService()
        self.db.listen(EVENTS, self.tracker.notified)
        self.tracker.start()

    def stopService(self):  # noqa: N802
        self.tracker.stop()
        return super().stopService()


def live_tracking(config: Config, db, clock) -> TrackingComponent | None:
    """The component for ``db`` (already owned and started by the host service), or None when
    ``[tracking] live`` is off."""
    if not config.get_bool("tracking", "live"):
        return None
    settings = TrackingSettings.from_config(config)
    tracker = LiveTracker(TrackingRecords.for_settings(db, settings), settings, clock,
                          sweep_seconds=config.get_float("tracking", "sweep_seconds", 1, 86_400),
                          sweep_window_s=config.get_float("tracking", "sweep_window_s", 60, 7 * 86_400))
    return TrackingComponent(db, tracker)
