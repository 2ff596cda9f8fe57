"""Use case: keep the image store within its limits, and clean up after a crash.

``purge`` runs periodically (``[images] retention_interval``): the oldest images go while they
are older than the retention age or the disk is above its watermark (the plan is the domain's,
ccl/domain/ingest/retention.py). ``sweep`` runs once at start-up, when the database answers:
files placed just before a crash whose rows were never committed.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ccl.domain.ingest.retention import Policy
from ccl.domain.metrics import Counter
from ccl.ports import IImageRetention, RetentionRun

log = Logger()
MB = 1024 * 1024


@attrs.define
class ImageHousekeeping:
    retention: IImageRetention
    policy: Policy
    purged: Counter  # ingest_images_purged_total

    def purge(self) -> Deferred:
        """One retention pass; a failure is logged (the next pass tries again)."""
        return self.retention.purge(self.policy).addCallbacks(self._purged, self._failed,
                                                              errbackArgs=("retention run",))

    def sweep(self, before: float) -> Deferred:
        """Remove the files of uploads cut short by a crash before ``before`` (the start)."""
        return self.retention.sweep_orphans(before).addErrback(self._failed, "orphan sweep")

    def _purged(self, result: RetentionRun) -> RetentionRun:
        if result.deleted:
            self.purged.inc(result.deleted)
            log.info("retention: {n} images deleted, {mb:.1f} MB freed", n=result.deleted, mb=result.freed_bytes / MB)
        return result

    @staticmethod
    def _failed(failure, what: str) -> None:
        log.warn("{what} failed: {error}", what=what, error=failure.getErrorMessage())
