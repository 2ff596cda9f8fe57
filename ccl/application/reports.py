"""Use cases of the coil report (PDF and CSV), the accuracy figures from reviews, and the export
of reviewed images for retraining (docs/quality.md)."""

from __future__ import annotations

import datetime
from typing import Any

from ccl.domain import review_accuracy
from ccl.domain.coil_report import CoilReport, ReportDefect, defects_csv
from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.ports import Actor, IAuditLog
from ccl.ports.reports import ICoilReportReads, IReportRenderer, IReviewReads, ITrainingArchive, ReviewFilter


class NoSuchCoil(LookupError):
    """Nothing is known of this coil number (no schedule, no tracking, no defect)."""


def _defect(row: dict[str, Any]) -> ReportDefect:
    tracked = row.get("metre") is not None
    paths = tuple(p for p in (row.get("labeled_thumb"), row.get("labeled_path"), row.get("original_thumb"),
                              row.get("original_path")) if p)
    return ReportDefect(
        id=row["id"], defect_type=row["defect_type"], severity=row["severity"],
        confidence=float(row["confidence_score"]), detected_at=str(row["detection_time"]),
        camera_id=row["camera_id"], surface=row.get("surface") or row["camera_id"],
        metre=row["metre"] if tracked else row.get("box_metre"), tracked=tracked,
        uncertainty_m=row.get("uncertainty_m") if tracked else None, across=row.get("across"),
        width_px=row.get("defect_size_width"), height_px=row.get("defect_size_height"),
        review_status=row.get("review_status") or "new", original_type=row.get("original_defect_type"),
        model=row.get("model"), image_paths=paths, periodic_series=row.get("periodic_series_id"),
        held_by=tuple((row[f"{kind}_host"], kind, row[f"{kind}_filename"]) for kind in ("labeled", "original")
                      if row.get(f"{kind}_host") and row.get(f"{kind}_filename")))


class CoilReports:
    """One coil's report as a PDF (drawn in a thread by the renderer) and its defects as CSV."""

    def __init__(self, reads: ICoilReportReads, renderer: IReportRenderer, clock):
        self._reads = reads
        self._renderer = renderer
        self._clock = clock

    async def report(self, coil_number: str) -> CoilReport:
        """Raises InvalidCoilNumber (not a coil number) or NoSuchCoil."""
        check_coil_number(coil_number)
        found = await self._reads.coil_report(coil_number)
        if found is None:
            raise NoSuchCoil(coil_number)
        return CoilReport(
            coil_number=coil_number,
            generated_at=datetime.datetime.fromtimestamp(self._clock.seconds(), datetime.timezone.utc),
            schedule=found["schedule"], tracking=found["tracking"],
            defects=tuple(_defect(row) for row in found["defects"]),
            grade=found.get("grade"), series=tuple(found.get("series") or ()))

    async def pdf(self, coil_number: str) -> bytes:
        return await self._renderer.render(await self.report(coil_number))

    async def csv(self, coil_number: str) -> bytes:
        return defects_csv((await self.report(coil_number)).defects)


class ReviewAccuracy:
    """Precision per AI model and defect type from the operators' reviews."""

    def __init__(self, reads: IReviewReads, min_reviews: int):
        self._reads = reads
        self._min_reviews = min_reviews

    async def figures(self, query: ReviewFilter) -> list[review_accuracy.Precision]:
        rows = await self._reads.outcomes(query)
        return review_accuracy.precision_table(rows, self._min_reviews)


class TrainingExport:
    """The reviewed images with their final labels, as a zip with a manifest (for retraining)."""

    def __init__(self, reads: IReviewReads, archive: ITrainingArchive, audit: IAuditLog, max_images: int):
        self._reads = reads
        self._archive = archive
        self._audit = audit
        self._max_images = max_images

    async def export(self, query: ReviewFilter, actor: Actor) -> tuple[str, int]:
        """(path of a temporary zip file the caller removes, images in it); audited as
        ``training.export`` with the filter and the count."""
        rows = await self._reads.reviewed_images(query, self._max_images)
        items = review_accuracy.export_items(rows)
        path = await self._archive.build(items)
        await self._audit.append(actor, "training.export", None, "ok", {
            "since": query.since.isoformat() if query.since else None,
            "before": query.before.isoformat() if query.before else None,
            "model_id": query.model_id, "defect_type": query.defect_type, "images": len(items),
            "limit_reached": len(rows) >= self._max_images})
        return path, len(items)


__all__ = ["CoilReports", "InvalidCoilNumber", "NoSuchCoil", "ReviewAccuracy", "TrainingExport"]
