"""The Jetson boxes' rows in ``link_status`` (kind ``jetson``, one per camera), for the dashboard.

No NOTIFY, as for the MES and 고기원 links: the dashboard reads the rows when it loads and
whenever a ``link`` event comes; a live event per write would also reach every listener of
the defect and image events.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import as_store_unavailable
from ccl.domain.ingest.links import KIND, LinkSighting
from ccl.ports import IJetsonLinks

#: Seen: connected, last seen at the newest of the stored and the new time (two services write
#: the same row), details merged (what a heartbeat said about the box stays after an upload).
_SEEN = f"""
INSERT INTO link_status AS l (link, kind, connected, last_seen_at, details, updated_at)
SELECT v.link, '{KIND}', true, v.seen_at, v.details, now()
  FROM unnest(%s::text[], %s::timestamptz[], %s::jsonb[]) AS v (link, seen_at, details)
ON CONFLICT (link) DO UPDATE
   SET kind = EXCLUDED.kind, connected = true,
       last_seen_at = GREATEST(l.last_seen_at, EXCLUDED.last_seen_at),
       details = l.details || EXCLUDED.details, updated_at = now()"""

_SILENT = f"""
UPDATE link_status SET connected = false, updated_at = now()
 WHERE kind = '{KIND}' AND connected AND last_seen_at < now() - make_interval(secs => %s)
RETURNING link"""


def _details(sighting: LinkSighting) -> str:
    details = {"camera_id": sighting.camera_id, "via": sighting.via,
               f"last_{sighting.via}_at": sighting.seen_at.isoformat()}
    if sighting.address is not None:
        details["address"] = sighting.address
    if sighting.box_id is not None:
        details["box_id"] = sighting.box_id
    return json.dumps(details, ensure_ascii=False)


@implementer(IJetsonLinks)
class JetsonLinkRecords:
    def __init__(self, db):
        self._db = db

    def seen(self, sightings) -> defer.Deferred:
        sightings = list(sightings)
        if not sightings:
            return defer.succeed(None)
        return self._db.runOperation(_SEEN, ([s.link for s in sightings], [s.seen_at for s in sightings],
                                             [_details(s) for s in sightings])).addCallbacks(
            lambda _: None, as_store_unavailable)

    def mark_silent(self, after_seconds: float) -> defer.Deferred:
        return self._db.runQuery(_SILENT, (after_seconds,)).addCallbacks(
            lambda rows: sorted(link for (link,) in rows), as_store_unavailable)
