"""Use cases: receive defects from a Jetson box, single or as a batch, and AI model scores.

The rules are the domain's (validate_defect, the batch lanes); storing goes through
IDefectRecords; each camera heard from is a sign of life of its link.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs
from twisted.internet.defer import inlineCallbacks

from ccl.application.jetson_links import LinkTracker
from ccl.domain.ingest.defects import Thresholds, validate_defect, validate_performance
from ccl.ports import IDefectRecords


@attrs.define
class DefectIngestion:
    records: IDefectRecords
    links: LinkTracker
    now: Callable[[], datetime]

    @inlineCallbacks
    def single(self, body: object, *, address: str | None = None):
        """Deferred[(row as JSON text, created)]; fails with InvalidDefect or UnknownModel."""
        thresholds = yield self.records.thresholds()
        defect = validate_defect(body, thresholds, now=self.now())
        row, created = yield self.records.store_single(defect)
        self.links.seen(defect.camera_id, "defects", address=address)
        return row, created

    @inlineCallbacks
    def batch(self, prepare: Callable[[Thresholds, datetime], tuple], *, address: str | None = None):
        """Store the DefectRows that ``prepare(thresholds, now)`` makes (on the store's worker
        thread, see IDefectRecords.store_batch) in one transaction:
        Deferred[(what prepare returned first, its rows, BatchResult)]."""
        thresholds = yield self.records.thresholds()
        now = self.now()
        made = {}

        def run():
            prepared, rows, batch_info = prepare(thresholds, now)
            made["rows"] = rows
            return prepared, rows, batch_info

        prepared, result = yield self.records.store_batch(run)
        rows = made["rows"]
        for camera_id in {row.camera_id for row in rows}:
            self.links.seen(camera_id, "defects", address=address)
        return prepared, rows, result

    def update_performance(self, body: object):
        """Deferred[model dict | None (no such model)]; raises InvalidDefect for bad scores."""
        model_id, scores = validate_performance(body)
        return self.records.update_performance(model_id, scores).addCallback(lambda model: (model_id, model))
