"""Ports of the inspection rules (``system_settings``) and the operators' reviews of defects."""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface


class ReviewConflict(Exception):
    """The review would change nothing (reclassify to the type the defect already has)."""


@attrs.frozen
class ReviewedDefect:
    """A defect's review state (``defect_detections``)."""

    id: int
    coil_number: str
    defect_type: str
    original_defect_type: str | None
    review_status: str
    reviewed_by: str | None
    reviewed_at: datetime.datetime | None
    review_comment: str | None


@attrs.frozen
class ReviewEntry:
    """One action of ``defect_reviews``."""

    id: int
    action: str
    previous_status: str | None
    from_type: str | None
    to_type: str | None
    comment: str | None
    reviewed_by: str
    reviewed_at: datetime.datetime


@attrs.frozen
class Review:
    """A review to apply: ``status`` the new review_status; ``new_type`` only to reclassify."""

    defect_id: int
    action: str
    status: str
    comment: str
    new_type: str | None
    by: str


class ISettingsStore(Interface):
    def load():
        """Deferred[InspectionSettings] (ccl.domain.inspection_settings), defaults for what is unset."""

    def save(settings, by: str):
        """Store every key of ``settings`` in one transaction."""


class IDefectReviewStore(Interface):
    def apply(review: Review):
        """Update the defect, append the review and announce it on the events channel, in one
        transaction: Deferred[(ReviewedDefect, ReviewEntry) | None] (None: no such defect).
        Fails with ReviewConflict when a reclassification names the defect's own type."""

    def defect(defect_id: int):
        """Deferred[ReviewedDefect | None]."""

    def history(defect_id: int):
        """Deferred[list[ReviewEntry]], oldest first."""
