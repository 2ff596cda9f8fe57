"""The interfaces the application's use cases are written against; adapters provide them.

Every method returns a Deferred: the adapters do blocking work in threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from zope.interface import Interface

from ccl.ports.ingest import (  # noqa: F401 (re-exported)
    BatchResult,
    IDefectRecords,
    IHeartbeats,
    IImageFiles,
    IImageFolder,
    IImageRecords,
    IImageRetention,
    IIngestRecords,
    IIngestTokens,
    IJetsonLinks,
    ImageRecord,
    ImageRefused,
    RetentionRun,
    IThumbnails,
    StorageUnavailable,
    StoredHeartbeat,
    UnknownModel,
)
from ccl.ports.mes_pipeline import (  # noqa: F401 (re-exported)
    IForwarder,
    IForwarderConsumer,
    IForwardingLease,
    IJournal,
    IJournalConsumer,
    IJournalWriter,
    IWriterConsumer,
)


class StoreUnavailable(Exception):
    """The store cannot be reached right now; the same call may succeed later."""


class StoreRefused(Exception):
    """The store refused the data itself (a constraint, a value out of range): retrying the
    same call would fail the same way."""


class IProcessStore(Interface):
    """Where MES journal records end up (PostgreSQL)."""

    def applied_upto(journal: str):
        """Deferred[int]: the last journal record number already applied (0 if none).
        Fails with StoreUnavailable."""

    def apply(journal: str, rows: list, upto: int):
        """Deferred[BatchOutcome]: store ProcessRow/RejectedRow items (``rows`` is an iterable,
        maybe lazy: iterate it once, off the reactor if the store has a worker) and record that the
        journal is applied up to ``upto``, all in ONE transaction. Rows whose number is not
        above the stored progress are skipped (a replay never doubles). Fails with
        StoreUnavailable or StoreRefused; on failure nothing of the batch is stored."""


# Forwarding to 고기원 ------------------------------------------------------------------


@attrs.frozen
class OutboxEntry:
    """One telegram waiting in ``forward_outbox`` to be forwarded to 고기원."""

    id: int | None  # None: a live entry whose outbox row is not committed yet
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



# The UI's ports (accounts, audit, alerts, inspection rules and reviews, read models).
#: ``in_thread(function, *args)``: run CPU or blocking work off the reactor, a Deferred of its
#: result (the composition roots give ``twisted.internet.threads.deferToThread``).
InThread = Callable[..., Any]

from ccl.ports.accounts import Account, Credentials, IAccountStore, ISessionStore, Session, User  # noqa: E402,F401
from ccl.ports.alerts import ALERT_STATES, Acknowledged, Alert, IAlertStore  # noqa: E402,F401
from ccl.ports.audit import Actor, AuditEntry, AuditQuery, IAuditLog  # noqa: E402,F401
from ccl.ports.inspection import (  # noqa: E402,F401
    IDefectReviewStore, ISettingsStore, Review, ReviewConflict, ReviewedDefect, ReviewEntry)
from ccl.ports.refusals import (  # noqa: E402,F401
    IDeadLetters, IRejectedTelegrams, OutboxRecord, RejectedTelegram, Requeued)
from ccl.ports.ui_reads import (  # noqa: E402,F401
    STATISTICS_MAX_DAYS, ICoilHistory, ICoilReads, IDashboardReads, IDatabaseProbe, IEventFeed, IModelRegistry,
    ImageNotOnPeer, IPeerImages, IStatistics, ModelExists, NoSuchModel, PeerUnavailable)
