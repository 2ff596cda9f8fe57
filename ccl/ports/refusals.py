"""Ports of the UI's diagnosis pages: the telegrams we refused (``rejected_telegrams``) and
the dead letters of forwarding (refused ``forward_outbox`` entries), and sending one again.
Every method returns a Deferred and fails with ``ccl.ports.StoreUnavailable`` while the
database cannot be reached."""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface


@attrs.frozen
class RejectedTelegram:
    """One telegram we refused (NAKed), or garbage, from ``rejected_telegrams``."""

    id: int
    received_at: datetime.datetime  # aware
    peer: str | None
    listener: str  # "mes" (9304) or "gokiwon-ack" (9306)
    result_code: str  # the NAK's code; "00" when ACKed and then refused by the database
    reason: str
    tc_code: str | None
    sequence_no: int | None
    raw: bytes


@attrs.frozen
class OutboxRecord:
    """An outbox entry as the dead-letter page shows it (its whole row, bytes included)."""

    id: int
    channel: str
    tc_code: str
    sequence_no: int
    state: str  # pending, delivered, refused (a dead letter)
    created_at: datetime.datetime
    attempts: int
    first_sent_at: datetime.datetime | None
    last_sent_at: datetime.datetime | None
    delivered_at: datetime.datetime | None
    refused_at: datetime.datetime | None
    refused_code: str | None
    resent_count: int
    resent_at: datetime.datetime | None
    raw: bytes


@attrs.frozen
class Requeued:
    """What ``requeue`` did: ``entry`` as it is now (None: no such entry); ``requeued`` False
    when it was not a dead letter (``entry.state`` says what it was)."""

    entry: OutboxRecord | None
    requeued: bool


class IRejectedTelegrams(Interface):
    """The telegrams kept in ``rejected_telegrams``. Reads fail with StoreUnavailable."""

    def page(chosen):
        """Deferred[Listing] of RejectedTelegram for a ``ccl.domain.refusals.RejectedFilter``,
        newest first; in a listing ``raw`` holds the first bytes only (``get`` has them all)."""

    def get(rejected_id: int):
        """Deferred[RejectedTelegram | None]."""


class IDeadLetters(Interface):
    """Dead letters in ``forward_outbox`` and sending one again. Fails with StoreUnavailable."""

    def page(chosen):
        """Deferred[Listing] of OutboxRecord for a ``ccl.domain.refusals.DeadLetterFilter``
        (``raw``: the first bytes only, as above)."""

    def get(entry_id: int):
        """Deferred[OutboxRecord | None]."""

    def requeue(entry_id: int, at: float, actor):
        """Deferred[Requeued]: in ONE transaction, a refused entry becomes pending again (counted
        in ``resent_count``, ``resent_at`` = ``at``) and an ``audit_logs`` row names the ``actor``
        (a ``ccl.ports.Actor``); an
        entry in another state is left alone and the refusal is audited the same way."""
