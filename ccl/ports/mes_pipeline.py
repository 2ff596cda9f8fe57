"""Ports of the MES pipeline (ccl.application.mes_pipeline): journal -> writer -> forwarders.

The pipeline drives each part through its interface here and is, in return, the one
consumer of each (``I...Consumer``): no part keeps a list of hooks for others to append to.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IJournalConsumer(Interface):
    """Takes each batch of journal records once it is on disk (the MES pipeline)."""

    def durable(records):
        """``records`` (JournalRecords, in journal order) are on disk; called before their
        appends' Deferreds fire, so before any of them is ACKed. Must be quick."""


class IJournal(Interface):
    """The MES journal (adapters/storage/journal.py): records on disk before any ACK."""

    journal_id = Attribute("The journal's name (known once opened); the store keeps its progress under it")
    last_durable = Attribute("Number of the last record on disk")

    def open():
        """Recover the journal on disk: list[JournalRecord] of every whole record. Synchronous,
        before anything is appended."""

    def start(consumer=None):
        """Take appends from now on; every batch on disk goes to ``consumer`` (IJournalConsumer)."""

    def release(upto):
        """Records up to ``upto`` are in the store: their disk space may go."""

    def stop():
        """Deferred fired once the last write is on disk and the journal is closed."""


class IWriterConsumer(Interface):
    """Hears of each batch the journal writer committed to the store (the MES pipeline)."""

    def committed(outcome, upto):
        """A batch up to journal record ``upto`` is committed; ``outcome`` is its BatchOutcome
        (``channels`` got outbox rows, ``forwarded`` lists (channel, record number, outbox id))."""


class IJournalWriter(Interface):
    """Applies journal records to the process store in order (application/store_telegrams.py)."""

    applied_upto = Attribute("Last record number the store has (None until it answered)")
    in_transaction = Attribute("True while a batch is being applied (its commit not reported yet)")

    def start(journal, consumer=None):
        """Apply the records of journal ``journal`` (its id) handed over with ``enqueue``; report
        each commit to ``consumer`` (IWriterConsumer). Deferred fired when the writer stops."""

    def enqueue(records):
        """Durable records, in journal order, to be applied."""

    def waiting_records(limit):
        """The records durable and not yet committed, in order; None when more than ``limit``
        wait or the progress in the store is not known yet."""

    def stop():
        """Deferred: stop after the batch in flight."""


class IForwarderConsumer(Interface):
    """Hears when a forwarder has read everything the outbox holds (the MES pipeline)."""

    def caught_up(channel):
        """The forwarder of ``channel`` found nothing more in the outbox: a chance to go live."""


class IForwarder(Interface):
    """One channel's store-and-forward to 고기원 (application/forwarding.py), as the MES
    pipeline drives it. Entries are (journal record number, OutboxEntry) pairs."""

    channel = Attribute("The channel's name (schedule, wpd, speed)")
    live = Attribute("True while new entries come from the journal (offer) instead of the outbox")
    limit = Attribute("Highest outbox id whose commit the writer reported (None: read without limit)")
    queued = Attribute("Entries held, waiting to be sent")
    live_room = Attribute("Entries it may hold waiting at the moment it goes live")

    def start(consumer=None):
        """Read the outbox and send; tell ``consumer`` (IForwarderConsumer) when caught up."""

    def stop():
        """Stop reading and sending; entries without an outbox id are forgotten."""

    def wake():
        """New outbox entries may have been committed: read them (unless live)."""

    def can_go_live():
        """True when everything the outbox holds is loaded and it is connected."""

    def go_live(entries):
        """From now on take new entries from ``offer``; ``entries``: the durable, uncommitted ones."""

    def offer(entries):
        """Entries just made durable by the journal (ignored unless live)."""

    def bind(pairs, applied_upto):
        """The writer committed up to ``applied_upto``; ``pairs``: (record number, outbox id)."""


class IForwardingLease(Interface):
    """Who of several ccl-mes forwards to 고기원: exactly one holds the lease at a time (two
    plant servers; adapters/storage/forwarding_lease.py holds it as a PostgreSQL advisory lock)."""

    held = Attribute("True while this process holds the lease")

    def start(gained, lost):
        """Keep trying to hold the lease; call ``gained()`` when it is ours and ``lost()`` when
        it may no longer be (the connection holding it broke): stop sending at once then."""

    def stop():
        """Give the lease up (Deferred); ``lost()`` is called first if it was held."""
