"""Image metadata rows in PostgreSQL (the files themselves live in the ImageStore)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import attrs
from zope.interface import implementer

from ccl.adapters.storage.defect_store import EVENTS, CachedThresholds, store_many
from ccl.adapters.storage.postgres import as_store_unavailable
from ccl.domain.ingest.defects import Defect
from ccl.domain.ingest.retention import Candidate
from ccl.ports import BatchResult, IImageRecords, IIngestRecords, ImageRecord


_PUBLIC = ("id, coil_number, kind, filename, path, bytes AS size, width, height, format, sha256, captured_at,"
           " received_at AS upload_time, camera_id, pair_id, purged_at, stored_on")


def store_pair(connection, records: Sequence[ImageRecord], defects: Sequence[Defect]) -> tuple[dict[str, int], BatchResult]:
    """Insert the pair's rows (pair_id = the original's id), its defects, and the events, in one transaction.

    Ids are taken first, so that rows, pair_id and events go in one round trip.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('images_id_seq') FROM generate_series(1, %s)", (len(records),))
        ids = {record.kind: row[0] for record, row in zip(records, cursor.fetchall())}
        pair_id = ids.get("original", next(iter(ids.values())))
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(records))
        params: list = []
        events = []
        for record in records:
            params += [ids[record.kind], record.coil_number, record.kind, record.filename, record.path, record.bytes,
                       record.width, record.height, record.format, record.sha256, record.captured_at,
                       record.received_at, record.camera_id, pair_id, record.stored_on]
            events.append(json.dumps({"table": "images", "id": ids[record.kind], "coil_number": record.coil_number,
                                      "kind": record.kind, "filename": record.filename, "camera_id": record.camera_id}))
        cursor.execute(
            "INSERT INTO images (id, coil_number, kind, filename, path, bytes, width, height, format, sha256,"
            f" captured_at, received_at, camera_id, pair_id, stored_on) VALUES {rows};"
            f" SELECT count(pg_notify('{EVENTS}', e)) FROM unnest(%s::text[]) AS e", (*params, events))
    result = store_many(connection, defects, image_ids=ids) if defects else BatchResult(0, [], [])
    return ids, result


def latest(db, kind: str, coil_number: str | None):
    where, params = "kind = %s AND purged_at IS NULL", [kind]
    if coil_number:
        where += " AND coil_number = %s"
        params.append(coil_number)
    return db.runQuery(f"SELECT row_to_json(i)::text FROM (SELECT {_PUBLIC} FROM images WHERE {where}"
                       f" ORDER BY received_at DESC, id DESC LIMIT 1) i", tuple(params)
                       ).addCallback(lambda rows: json.loads(rows[0][0]) if rows else None)


def image_page(db, kind: str, *, page: int, limit: int, coil_number: str | None, since: datetime | None,
         until: datetime | None):
    where, params = ["kind = %(kind)s"], {"kind": kind, "limit": limit, "offset": (page - 1) * limit}
    if coil_number:
        where.append("coil_number = %(coil)s")
        params["coil"] = coil_number
    if since:
        where.append("captured_at >= %(since)s")
        params["since"] = since
    if until:
        where.append("captured_at <= %(until)s")
        params["until"] = until
    condition = " AND ".join(where)
    return db.runQuery(
        f"SELECT (SELECT count(*) FROM images WHERE {condition}),"
        f" (SELECT coalesce(json_agg(i), '[]')::text FROM (SELECT {_PUBLIC} FROM images WHERE {condition}"
        f"  ORDER BY captured_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s) i)", params
    ).addCallback(lambda rows: (rows[0][0], json.loads(rows[0][1])))


#: One pass over the table for the counts and bytes (grouped by kind and kept/purged), the
#: distinct coils from the images_coil index, the newest upload by images_received (081): the
#: table is read once instead of six times and never sorted.
_STATS_SQL = """
WITH g AS MATERIALIZED (
    SELECT kind, purged_at IS NULL AS kept, count(*) AS n, sum(bytes) AS b
    FROM images GROUP BY kind, purged_at IS NULL),
newest AS MATERIALIZED (SELECT coil_number, received_at FROM images ORDER BY received_at DESC, id DESC LIMIT 1)
SELECT json_build_object(
    'total_images', (SELECT coalesce(sum(n), 0) FROM g),
    'total_pairs', (SELECT coalesce(sum(n), 0) FROM g WHERE kind = 'original'),
    'stored_bytes', (SELECT coalesce(sum(b), 0) FROM g WHERE kept),
    'purged_images', (SELECT coalesce(sum(n), 0) FROM g WHERE NOT kept),
    'by_kind', (SELECT coalesce(json_object_agg(kind, n), '{}') FROM
                (SELECT kind, sum(n) AS n FROM g GROUP BY kind) k),
    'coils', (SELECT count(*) FROM (SELECT DISTINCT coil_number FROM images) c),
    'last_upload_time', (SELECT received_at FROM newest),
    'last_coil_number', (SELECT coil_number FROM newest)
)::text"""


def stats(db):
    return db.runQuery(_STATS_SQL).addCallback(lambda rows: json.loads(rows[0][0]))


# Retention (blocking: run on the SyncPool) -------------------------------------------------

#: The rows of one machine's store (two plant servers): its own, and those stored before
#: images.stored_on existed (NULL, schema 122). None: every row (one server, or a test).
_HELD_HERE = " AND (%(host)s::text IS NULL OR stored_on IS NULL OR stored_on = %(host)s)"


def store_bytes(connection, host_name: str | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(bytes), 0) FROM images WHERE purged_at IS NULL" + _HELD_HERE,
                       {"host": host_name})
        return int(cursor.fetchone()[0])


@attrs.frozen
class StoredImage:
    """A kept image as the retention job sees it: what the plan weighs, and its files."""

    candidate: Candidate
    kind: str
    path: str
    thumbnail_path: str | None


def oldest(connection, after_id: int, limit: int, host_name: str | None = None) -> list[StoredImage]:
    """Unpurged images of this machine's store (``host_name``; None: all), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, bytes, received_at, kind, path, thumbnail_path FROM images"
                       " WHERE purged_at IS NULL AND id > %(after)s" + _HELD_HERE + " ORDER BY id LIMIT %(limit)s",
                       {"after": after_id, "limit": limit, "host": host_name})
        return [StoredImage(Candidate(image_id, size, received_at), kind, path, thumbnail)
                for image_id, size, received_at, kind, path, thumbnail in cursor.fetchall()]


def mark_purged(connection, ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE images SET purged_at = now() WHERE id = ANY(%s) AND purged_at IS NULL", (ids,))
        return cursor.rowcount


@implementer(IIngestRecords, IImageRecords)
class IngestRecords:
    """Thresholds from system_settings (cached briefly), the pair transaction on the SyncPool,
    and the image API's reads."""

    def __init__(self, db, pool, clock, cache_seconds: float = 10.0):
        self._db = db
        self._pool = pool
        self.thresholds = CachedThresholds(db, clock, cache_seconds)

    def store_pair(self, records, defects):
        return self._pool.run(store_pair, records, defects)

    def latest(self, kind, coil_number):
        return latest(self._db, kind, coil_number).addErrback(as_store_unavailable)

    def page(self, kind, *, page, limit, coil_number, since, until):
        return image_page(self._db, kind, page=page, limit=limit, coil_number=coil_number, since=since,
                     until=until).addErrback(as_store_unavailable)

    def stats(self):
        return stats(self._db).addErrback(as_store_unavailable)



# Backup (blocking: the ccl backup command) ------------------------------------------------

def cataloged_images(connection, host_name: str) -> list[tuple[str, str, str]]:
    """(kind, filename, sha256) of every kept image this machine's store holds (``stored_on`` is
    ``host_name``, or NULL: stored before the column existed), oldest first: what the image
    backup copies. Another host's images are that host's backup's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, filename, sha256 FROM images WHERE purged_at IS NULL"
                       " AND (stored_on IS NULL OR stored_on = %s) ORDER BY id", (host_name,))
        return cursor.fetchall()


def images_elsewhere(connection, host_name: str) -> dict[str, int]:
    """Kept images held by other hosts, counted by host (the backup says what it left to them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT stored_on, count(*) FROM images WHERE purged_at IS NULL AND stored_on <> %s"
                       " GROUP BY stored_on ORDER BY stored_on", (host_name,))
        return dict(cursor.fetchall())
