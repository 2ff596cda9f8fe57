"""The retention job: keep the image store under its age limit and disk watermark.

Oldest images go first. Files (and thumbnails) are deleted before their rows are marked
purged, so a crash in between leaves a row pointing at a missing file (marked on the next
run), never an unaccounted file. Every deletion is logged; each run with deletions is audited.
"""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime, timezone

from twisted.logger import Logger
from zope.interface import implementer

from ccl.adapters.storage import image_records
from ccl.adapters.storage.image_store import ImageStore
from ccl.domain.ingest.retention import Policy, Usage, plan
from ccl.ports import IImageRetention, RetentionRun

log = Logger()


def run_retention(connection, store: ImageStore, policy: Policy, now: datetime | None = None,
                  batch: int = 500, host_name: str | None = None) -> RetentionRun:
    """One pass (blocking; run on the SyncPool, which commits after it). ``host_name``: only the
    rows this machine's store holds (two plant servers: the other machine's images are its own
    retention's, and deleting them here would free nothing on this disk)."""
    now = now or datetime.now(timezone.utc)
    disk = store.disk_usage()
    used = disk.used
    stored = image_records.store_bytes(connection, host_name)
    deleted = freed = 0
    reasons: dict[str, int] = {}
    after = 0
    while True:
        rows = image_records.oldest(connection, after, batch, host_name)
        if not rows:
            break
        after = rows[-1].candidate.id
        usage = Usage(disk_total=disk.total, disk_used=used, store_bytes=stored)
        purges = plan([row.candidate for row in rows], usage, policy, now)
        by_id = {row.candidate.id: row for row in rows}
        ids = []
        for purge in purges:
            image = by_id[purge.candidate.id]
            candidate, kind, path = image.candidate, image.kind, image.path
            # The thumbnail's place is fixed by the name, even before its row records it.
            for victim in (path, store.thumbnail_path(kind, os.path.basename(path))):
                if victim:
                    try:
                        os.unlink(victim)
                    except FileNotFoundError:
                        pass
            log.info("retention deleted {kind} image {path} ({bytes} bytes, received {received}): {reason}",
                     kind=kind, path=path, bytes=candidate.bytes, received=candidate.received_at.isoformat(),
                     reason=purge.reason)
            ids.append(candidate.id)
            used -= candidate.bytes
            stored -= candidate.bytes
            freed += candidate.bytes
            reasons[purge.reason] = reasons.get(purge.reason, 0) + 1
        if ids:
            image_records.mark_purged(connection, ids)
            deleted += len(ids)
        if len(purges) < len(rows):
            break  # the plan stopped: younger images stay
    if deleted:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO audit_logs (actor, action, target, result, details) VALUES"
                           " ('ccl-images', 'images.retention', %s, 'ok', %s)",
                           (str(store.root), json.dumps({"deleted": deleted, "freed_bytes": freed, "reasons": reasons})))
    return RetentionRun(deleted, freed, reasons)


def sweep_orphans(connection, store: ImageStore, before: float, chunk: int = 1000) -> int:
    """Remove image files that have no row (a crash between placing the files and committing).

    Only files older than ``before`` (the service's start by the file system's clock,
    ImageStore.file_time) are considered, so nothing of a running upload is touched. Returns the number of files removed; each is logged.
    """
    removed = 0
    for kind in ("original", "labeled"):
        folder = store.folder(kind)
        names = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file() and entry.stat().st_mtime < before:
                    names.append(entry.name)
        for start in range(0, len(names), chunk):
            part = names[start:start + chunk]
            with connection.cursor() as cursor:
                cursor.execute("SELECT filename FROM images WHERE kind = %s AND filename = ANY(%s)", (kind, part))
                known = {row[0] for row in cursor.fetchall()}
            for name in part:
                if name not in known:
                    store.remove([folder / name, store.thumbnail_path(kind, name)])
                    log.warn("removed {kind} image {name}: no database row (an upload cut short by a crash)",
                             kind=kind, name=name)
                    removed += 1
    return removed


@implementer(IImageRetention)
class ImageRetention:
    """IImageRetention: each pass one transaction on the SyncPool (files deleted before their
    rows are marked, see above)."""

    def __init__(self, pool, store: ImageStore, host_name: str | None = None):
        self._pool = pool
        self._store = store
        self._host_name = host_name

    def purge(self, policy: Policy):
        return self._pool.run(functools.partial(run_retention, host_name=self._host_name), self._store, policy)

    def sweep_orphans(self, before: float):
        return self._pool.run(sweep_orphans, self._store, before)
