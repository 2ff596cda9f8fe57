"""Live coil tracking and the quality decisions on it, as a component of ccl-defects
(docs/tracking.md, "Where it runs"; docs/quality.md).

It LISTENs to ``ccl_events`` (every stored telegram, defect and image is announced there) and
places what is stored as it arrives; the quality watch beside it is told every placement and
coil result (roll marks, defect alarms, grading at completion). Hosted by ccl-defects: the
defects, the bulk of the work, are born there, and the MES service stays free of it (a fault
here never touches the MES link). Off with ``[tracking] live = false`` (the quality watch
with it, or alone with ``[quality] live = false``); ``ccl tracking rebuild`` works either way.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import threads

from ccl.domain.events import EVENTS_CHANNEL as EVENTS
from ccl.adapters.storage.quality_store import GradingRecords, QualityRecords
from ccl.adapters.storage.tracking_store import TrackingRecords
from ccl.application.quality import Grading, QualityWatch
from ccl.application.tracking import LiveTracker
from ccl.config import Config
from ccl.domain.quality.settings import QualitySettings, periodic_from_config
from ccl.domain.tracking.settings import TrackingSettings


class TrackingComponent(service.Service):
    name = "tracking"

    def __init__(self, db, tracker: LiveTracker, quality: QualityWatch | None = None):
        self.db = db
        self.tracker = tracker
        self.quality = quality

    def startService(self):  # noqa: N802 (twisted's name)
        super().startService()
        self.db.listen(EVENTS, self._notified)
        self.tracker.start()
        if self.quality is not None:
            self.quality.start()

    def _notified(self, payload) -> None:
        self.tracker.notified(payload)
        if self.quality is not None:
            self.quality.notified(payload)

    def stopService(self):  # noqa: N802
        self.tracker.stop()
        if self.quality is not None:
            self.quality.stop()
        return super().stopService()


def quality_watch(config: Config, db, clock, settings: TrackingSettings) -> QualityWatch | None:
    """The quality watch over ``db``, or None when ``[quality] live`` is off."""
    quality = QualitySettings.from_config(config)
    if not quality.live:
        return None
    return QualityWatch(QualityRecords(db), Grading(GradingRecords(db), quality), periodic_from_config(config),
                        quality, [c.camera_id for c in settings.cameras], clock, threads.deferToThread)


def live_tracking(config: Config, db, clock) -> TrackingComponent | None:
    """The component for ``db`` (already owned and started by the host service), or None when
    ``[tracking] live`` is off."""
    if not config.get_bool("tracking", "live"):
        return None
    settings = TrackingSettings.from_config(config)
    quality = quality_watch(config, db, clock, settings)
    tracker = LiveTracker(TrackingRecords.for_settings(db, settings), settings, clock,
                          sweep_seconds=config.get_float("tracking", "sweep_seconds", 1, 86_400),
                          sweep_window_s=config.get_float("tracking", "sweep_window_s", 60, 7 * 86_400),
                          consumer=quality)
    return TrackingComponent(db, tracker, quality)
