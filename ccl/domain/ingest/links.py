"""The Jetson boxes' link state, as the dashboard shows it: one link per camera, last seen when.

HTTP has no connection to watch: a camera counts as connected while its box keeps sending
(uploads, defects, heartbeats) and as disconnected once it has been silent for a while.
"""

from __future__ import annotations

from datetime import datetime

import attrs

KIND = "jetson"


def link_name(camera_id: str) -> str:
    """The ``link_status`` row of a camera (the UI shows ``Jetson jetson-top``)."""
    return f"{KIND}-{camera_id}"


@attrs.frozen
class LinkSighting:
    """A box was heard from: ``via`` is upload (image pair), defects or heartbeat."""

    camera_id: str
    seen_at: datetime
    via: str
    address: str | None = None
    box_id: str | None = None

    @property
    def link(self) -> str:
        return link_name(self.camera_id)
