"""Use case: keep the Jetson boxes' link state (``link_status``) current from what they send.

Every upload, defect post and heartbeat is a sign of life of its camera's box. Writing each
one would be a database write per defect (a thousand a second); instead a camera's link is
written at once when this process has not written it for ``save_interval`` seconds (so a box
that comes back shows up at once), and otherwise its newest sighting waits for ``flush``,
which runs every ``save_interval`` and also marks links silent for ``silent_after`` seconds as
disconnected (judged by the database's last-seen time, which both ingest services update).
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ccl.domain.ingest.links import LinkSighting, link_name
from ccl.ports import IJetsonLinks

log = Logger()


class LinkTracker:
    def __init__(self, links: IJetsonLinks, clock: IReactorTime, *, save_interval: float, silent_after: float):
        self._links = links
        self._clock = clock
        self.save_interval = save_interval
        self.silent_after = silent_after
        self._written_at: dict[str, float] = {}
        self._waiting: dict[str, LinkSighting] = {}

    def seen(self, camera_id: str, via: str, *, address: str | None = None, box_id: str | None = None) -> None:
        """A box was heard from; returns at once (the write, when due, runs in the background)."""
        now = self._clock.seconds()
        link = link_name(camera_id)
        sighting = LinkSighting(camera_id, datetime.fromtimestamp(now, timezone.utc), via, address, box_id)
        last = self._written_at.get(link)
        if last is not None and now - last < self.save_interval:
            self._waiting[link] = sighting
            return
        self._written_at[link] = now
        self._waiting.pop(link, None)
        self._write([sighting])

    def flush(self) -> Deferred:
        """Write the sightings that waited, and mark silent links disconnected (a periodic job)."""
        now = self._clock.seconds()
        waiting, self._waiting = list(self._waiting.values()), {}
        for sighting in waiting:
            self._written_at[sighting.link] = now
        if len(self._written_at) > 1000:  # cameras come and go in tests; a plant has a few
            self._written_at = {link: at for link, at in self._written_at.items() if now - at < self.save_interval}
        written = self._write(waiting) if waiting else succeed(None)
        silent = self._links.mark_silent(self.silent_after)
        silent.addCallback(self._report_silent)
        silent.addErrback(self._failed, "marking silent links")
        return gatherResults([written, silent])

    def _write(self, sightings: list[LinkSighting]) -> Deferred:
        return self._links.seen(sightings).addErrback(self._failed, "writing the link state")

    @staticmethod
    def _report_silent(links: list[str]) -> None:
        for link in links:
            log.info("{link}: nothing received for a while, marked disconnected", link=link)

    @staticmethod
    def _failed(failure, what: str) -> None:
        log.warn("{what} failed: {error}", what=what, error=failure.getErrorMessage())
