"""Interfaces the application layer needs from the outside world (zope.interface)."""

from __future__ import annotations

import attrs
from zope.interface import Interface


@attrs.frozen
class OutboxEntry:
    """One telegram waiting in ``forward_outbox`` to be forwarded to 고기원."""

    id: int
    channel: str
    tc_code: str
    sequence_no: int
    raw: bytes
    created_at: float  # seconds since the epoch
    attempts: int = 0  # sends recorded by any process so far


class IOutboxStore(Interface):
    """Where forwards are queued (``forward_outbox``). Every method returns a Deferred and
    retries while the database is unavailable, so a caller never sees an outage, only a delay."""

    def fetch_pending(channel: str, after_id: int, limit: int, before_id: int | None = None,
                      exclude: list[int] | None = None):
        """Pending entries of ``channel`` with after_id < id (< before_id), oldest first, at most ``limit``,
        leaving out the ids in ``exclude``: Deferred[list[OutboxEntry]]."""

    def record_sent(entry_id: int, at: float):
        """The entry was written to a connection at ``at``: count the attempt."""

    def mark_delivered(entry_id: int, at: float):
        """고기원 accepted the entry (or it was written, without ACKs): Deferred fired once durable."""

    def mark_refused(entry_id: int, result_code: str, at: float):
        """고기원 refused the entry with ``result_code``: Deferred fired once durable."""
