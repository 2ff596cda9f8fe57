"""The interfaces the application's use cases need; adapters implement them.

Every method returns a Deferred: the adapters do the blocking work in threads.
"""

from __future__ import annotations

from zope.interface import Interface


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


class IThumbnails(Interface):
    """Makes the UI's thumbnails in the background."""

    def request(image_id, kind, filename):
        """Queue a thumbnail for a stored image; returns at once."""
