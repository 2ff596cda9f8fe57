"""Ports of the coil report, the accuracy figures from reviews and the training export
(docs/quality.md): what the use cases in ccl/application/reports.py read and hand over to be
drawn or packed. Every method returns a Deferred; reads fail with ports.StoreUnavailable while
the database is away."""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface


class ICoilReportReads(Interface):
    def coil_report(coil_number: str):
        """Deferred[dict | None]: ``schedule`` (newest TC 4000 row or None), ``tracking`` (the
        newest tracked coil of that number, or None), ``defects`` (rows: the defects tracking
        placed on that coil, and those the box sent for that number that tracking put on no
        other coil), ``grade`` (the coil_grades row of that tracked coil, or None: not graded),
        ``series`` (its periodic series); None when nothing at all is known of the coil."""


class IReportRenderer(Interface):
    def render(report):
        """Deferred[bytes]: the PDF of a ``ccl.domain.coil_report.CoilReport``, drawn in a thread."""


@attrs.frozen
class ReviewFilter:
    """Reviewed defects by review time (``since`` <= reviewed_at < ``before``), model id, and
    the type the model said (None: any)."""

    since: datetime.datetime | None = None
    before: datetime.datetime | None = None
    model_id: int | None = None
    defect_type: str | None = None


class IReviewReads(Interface):
    def outcomes(query: ReviewFilter):
        """Deferred[list[dict]]: per model and type the model said: ``model_id``, ``model``
        (name and version, or None), ``defect_type``, ``confirmed``, ``false_positive``,
        ``reclassified`` (the final type differs from the model's)."""

    def reviewed_images(query: ReviewFilter, limit: int):
        """Deferred[list[dict]]: reviewed defects that have an image, oldest review first, at
        most ``limit``: id, final and original label, outcome, model, coil, metre, reviewer,
        reviewed_at, image paths (stored, relative to the image root or absolute)."""


class ITrainingArchive(Interface):
    def build(items: list):
        """Deferred[str]: the path of a temporary zip file (built in a thread) holding each
        item's image under a name of ours and a manifest (CSV and JSON). The caller removes it."""
