"""The interfaces the application's use cases are written against (adapters provide them)."""

from __future__ import annotations

from zope.interface import Interface


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
