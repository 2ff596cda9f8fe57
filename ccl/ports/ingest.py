"""The ports of ingestion (ccl-images, ccl-defects): what the Jetson API's web apps and use
cases need from storage.

The web apps reach storage only through these. Failures they answer: StoreUnavailable (the
database, 503), StorageUnavailable (the image root, 503), ImageRefused (the file, 4xx) and
UnknownModel (a model_id, 422).
"""

from __future__ import annotations

import attrs
from zope.interface import Attribute, Interface


class StorageUnavailable(Exception):
    """The image root is full or not writable; nothing was kept."""


class ImageRefused(Exception):
    """The file is not an acceptable image. ``status``: 413 (pixel budget), 415, 422."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class UnknownModel(ValueError):
    """Defects name AI models that do not exist (``model_ids``); nothing was stored."""

    def __init__(self, model_ids):
        super().__init__(", ".join(map(str, model_ids)))
        self.model_ids = list(model_ids)


@attrs.frozen
class BatchResult:
    """What storing a group of defects did: how many rows are new, the event_ids that were
    stored before (skipped), the new rows' ids."""

    stored: int
    duplicates: list[str]
    ids: list[int]


@attrs.frozen
class ImageRecord:
    """The metadata row of one stored image file (``images``)."""

    coil_number: str
    kind: str  # original | labeled
    filename: str
    path: str
    bytes: int
    width: int
    height: int
    format: str
    sha256: str
    captured_at: object  # datetime
    received_at: object  # datetime
    camera_id: str
    #: The plant server whose image store holds the file ([images] host_name of its ccl-images).
    stored_on: str | None = None


class IImageFolder(Interface):
    """The image root's blocking file operations the upload reader needs (call them in a thread)."""

    temp = Attribute("the folder where files are received (a Path)")

    def new_temp():
        """A new TempFile under ``temp`` (``write``, ``close``, ``path``, ``size``, ``sha256``);
        fails with StorageUnavailable."""

    def discard(paths):
        """Remove received files that will not be kept."""

    def path_of(kind, filename):
        """The Path of a stored image of ``kind`` (the name must be checked by the caller)."""

    def disk_usage():
        """The file system's usage (``total``, ``used``, ``free``)."""

    def probe():
        """Raise StorageUnavailable unless a file can be written under ``temp``."""


class IImageFiles(Interface):
    """The image file store (adapters/storage/image_store.py, threaded)."""

    def inspect(paths):
        """Check received files: Deferred[list[Inspected]]; fails with ImageRefused or StorageUnavailable."""

    def commit(coil_number, received_at_ms, files):
        """Give temp files their final names: Deferred[list[Stored]]; fails with StorageUnavailable."""

    def remove(paths):
        """Delete files again (a request that failed after its files were placed)."""


class IIngestRecords(Interface):
    """Where image metadata and defects are kept (PostgreSQL)."""

    def thresholds():
        """Deferred[Thresholds] of the severity and review rules."""

    def store_pair(records, defects):
        """Store the pair's rows and its defects in one transaction: Deferred[(ids by kind, BatchResult)]."""


class IImageRecords(Interface):
    """The image metadata the image API reads (Deferreds; fail with StoreUnavailable)."""

    def latest(kind, coil_number):
        """The newest kept image of ``kind`` (of ``coil_number`` if given) as a dict, or None."""

    def page(kind, *, page, limit, coil_number, since, until):
        """(total, rows as dicts) of one page, newest capture first."""

    def stats():
        """The figures of GET /stats (a dict)."""


class IDefectRecords(Interface):
    """Defects and AI model scores (Deferreds; fail with StoreUnavailable)."""

    def thresholds():
        """Deferred[Thresholds] of the severity and review rules."""

    def store_single(defect):
        """Store one validated Defect: Deferred[(row as JSON text, created)]; a stored event_id
        gives the stored row and created False. Fails with UnknownModel."""

    def store_batch(prepare):
        """Run ``prepare()`` on the store's worker thread (parsing and checking a big body is
        CPU work), which returns ``(anything, rows, batch_info)``, and store its DefectRows in ONE
        transaction: Deferred[(anything, BatchResult)]. Fails with what ``prepare`` raised, or
        UnknownModel (nothing stored)."""

    def update_performance(model_id, scores):
        """Update a model's scores and append them to its history: Deferred[dict | None (no model)]."""

    def performance_history(model_id, limit):
        """Deferred[{"model", "history"} | None (no model)]."""

    def stats():
        """Deferred[dict]: the figures of GET /stats."""

    def recent(limit, hours):
        """Deferred[list[dict]]: the newest defects with their coil's customer and BOM."""


class IIngestTokens(Interface):
    """The bearer tokens of the Jetson boxes (``ccl ingest-token``)."""

    def actor_for(digest):
        """Deferred[str | None]: the name of the valid (not revoked) token with this digest,
        recording its use; None for an unknown or revoked one."""


@attrs.frozen
class StoredHeartbeat:
    """A row of ``inspection_heartbeats``: the Heartbeat as stored, its id and arrival."""

    id: int
    heartbeat: object  # ccl.domain.ingest.heartbeats.Heartbeat
    received_at: object  # datetime


class IHeartbeats(Interface):
    """Where the boxes' inspection heartbeats are kept (``inspection_heartbeats``)."""

    def store(heartbeat):
        """Deferred[(StoredHeartbeat, created)]: a heartbeat of a stored (camera, period) gives
        the stored one and created False, storing nothing. Fails with StoreUnavailable."""


class IJetsonLinks(Interface):
    """The Jetson boxes' link state in ``link_status`` (one row per camera)."""

    def seen(sightings):
        """Record the LinkSightings (last seen, connected); Deferred fired once written."""

    def mark_silent(after_seconds):
        """Mark the links not seen for ``after_seconds`` as disconnected: Deferred[list of their names]."""


@attrs.frozen
class RetentionRun:
    """What one retention pass did: images deleted, bytes freed, deletions by reason."""

    deleted: int
    freed_bytes: int
    reasons: dict


class IImageRetention(Interface):
    """Keeping the image store within its limits (files and rows together)."""

    def purge(policy):
        """One retention pass under the domain's Policy: Deferred[RetentionRun]."""

    def sweep_orphans(before):
        """Remove image files older than ``before`` (seconds since the epoch) that have no row
        (placed just before a crash): Deferred[int] files removed."""


class IThumbnails(Interface):
    """Makes the UI's thumbnails in the background."""

    def request(image_id, kind, filename):
        """Queue a thumbnail for a stored image; returns at once."""

    def upload_started():
        """An upload is being received: thumbnails give way to it."""

    def upload_finished():
        """The upload is answered."""
