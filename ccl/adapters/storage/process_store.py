"""IProcessStore on PostgreSQL: one transaction per batch of MES journal records.

In that one transaction, for the records not yet applied (per ``journal_progress``):

* each accepted telegram becomes a row of its layout's table (multi-row INSERT built with
  ``mogrify``); ``ON CONFLICT (line_code, sequence_no, sent_at, raw) DO NOTHING`` stores a
  retransmission once;
* each newly inserted row whose layout has ``forward`` gets a ``forward_outbox`` row, in
  arrival order, so the forwarder can never see a telegram without its outbox entry or
  the other way round;
* refused telegrams go to ``rejected_telegrams``;
* one ``pg_notify('ccl_events', {"table", "id", "coil_number", "tc_code"})`` per new row
  (delivered by PostgreSQL only if the transaction commits);
* ``journal_progress`` moves to the batch's last record number.
"""

from __future__ import annotations

import collections
import datetime
import json

import psycopg2
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from ccl.adapters.storage.postgres import UNAVAILABLE, Database
from ccl.domain.journal_record import BatchOutcome, ProcessRow, RejectedRow
from ccl.ports import IProcessStore, StoreRefused, StoreUnavailable

log = Logger()

EVENTS_CHANNEL = "ccl_events"
CONFLICT_KEY = "(line_code, sequence_no, sent_at, raw)"


def _quote(identifier: str) -> str:
    # Table and column names come from the layout file, whose loader only admits
    # [a-z_][a-z0-9_]*; quoting keeps even a reserved word working.
    return '"' + identifier.replace('"', '""') + '"'


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


@implementer(IProcessStore)
class PostgresProcessStore:
    def __init__(self, db: Database):
        self._db = db

    def applied_upto(self, journal: str) -> defer.Deferred:
        reading = self._db.runQuery("SELECT applied_upto FROM journal_progress WHERE journal = %s", (journal,))
        reading.addCallback(lambda rows: rows[0][0] if rows else 0)
        return reading.addErrback(_translate)

    def apply(self, journal: str, rows: list, upto: int) -> defer.Deferred:
        return self._db.runInteraction(_apply, journal, rows, upto).addErrback(_translate)


def _translate(failure):
    if failure.check(*UNAVAILABLE):
        raise StoreUnavailable(str(failure.value).strip() or failure.type.__name__)
    if failure.check(psycopg2.Error):
        raise StoreRefused(str(failure.value).strip().splitlines()[0])
    # Anything else is unexpected (a driver state problem): log it fully, and treat it as
    # "try again later" so the writer keeps trying instead of stopping for good.
    log.failure("unexpected error storing MES records", failure)
    raise StoreUnavailable(failure.getErrorMessage())


@defer.inlineCallbacks
def _apply(cursor, journal: str, rows: list, upto: int):
    outcome = BatchOutcome()
    # FOR UPDATE: a second writer on the same journal (there should be none) would wait
    # here and then skip what this one stored.
    yield cursor.execute("SELECT applied_upto FROM journal_progress WHERE journal = %s FOR UPDATE", (journal,))
    found = cursor.fetchone()
    done = found[0] if found else 0
    fresh = [row for row in rows if row.number > done]
    outcome.skipped = len(rows) - len(fresh)

    events: list[tuple[int, str]] = []
    outbox: list[tuple] = []
    groups: dict[tuple[str, tuple[str, ...]], list[ProcessRow]] = collections.defaultdict(list)
    rejected: list[RejectedRow] = []
    for row in fresh:
        if isinstance(row, ProcessRow):
            groups[(row.table, tuple(row.columns))].append(row)
        else:
            rejected.append(row)

    for (table, names), group in groups.items():
        template = "(" + ", ".join(["%s"] * (len(names) + 1)) + ")"
        values = b", ".join(cursor.mogrify(template, (*row.columns.values(), row.raw)) for row in group)
        columns = ", ".join(_quote(name) for name in (*names, "raw"))
        yield cursor.execute(
            f"INSERT INTO {_quote(table)} ({columns}) VALUES ".encode() + values
            + f" ON CONFLICT {CONFLICT_KEY} DO NOTHING RETURNING id, raw".encode())
        inserted = {bytes(raw): row_id for row_id, raw in cursor.fetchall()}
        for row in group:
            row_id = inserted.pop(row.raw, None)
            if row_id is None:  # already stored: a retransmission (or a replay)
                outcome.duplicates[row.tc_code] = outcome.duplicates.get(row.tc_code, 0) + 1
                continue
            outcome.stored[row.tc_code] = outcome.stored.get(row.tc_code, 0) + 1
            if row.forward:
                outbox.append((row.number, row.forward, table, row_id, row.tc_code, row.sequence_no, row.raw))
                outcome.channels.add(row.forward)
            events.append((row.number, json.dumps(
                {"table": table, "id": row_id, "coil_number": row.coil_number, "tc_code": row.tc_code},
                ensure_ascii=False)))

    if rejected:
        values = b", ".join(cursor.mogrify(
            "(%s, %s, %s, %s, %s, %s, %s, %s)",
            (_utc(r.received_at), r.peer, r.listener, r.code, r.reason, r.tc_code, r.sequence_no, r.raw))
            for r in rejected)
        yield cursor.execute(
            b"INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, tc_code, "
            b"sequence_no, raw) VALUES " + values + b" RETURNING id")
        for row, (row_id,) in zip(rejected, cursor.fetchall()):
            events.append((row.number, json.dumps(
                {"table": "rejected_telegrams", "id": row_id, "coil_number": None, "tc_code": row.tc_code},
                ensure_ascii=False)))
        outcome.rejected = len(rejected)

    if outbox:
        outbox.sort()
        values = b", ".join(cursor.mogrify("(%s, %s, %s, %s, %s, %s)", entry[1:]) for entry in outbox)
        yield cursor.execute(
            b"INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, sequence_no, raw) VALUES "
            + values)

    if events:
        events.sort()
        yield cursor.execute(
            f"SELECT pg_notify('{EVENTS_CHANNEL}', payload) FROM unnest(%s::text[]) WITH ORDINALITY AS e(payload, n) "
            "ORDER BY n", ([payload for _, payload in events],))

    yield cursor.execute(
        "INSERT INTO journal_progress (journal, applied_upto, updated_at) VALUES (%s, %s, now()) "
        "ON CONFLICT (journal) DO UPDATE SET applied_upto = GREATEST(journal_progress.applied_upto, "
        "EXCLUDED.applied_upto), updated_at = now()", (journal, upto))
    return outcome
