"""IProcessStore on PostgreSQL: one transaction per batch of MES journal records.

In that one transaction, for the records not yet applied (per ``journal_progress``):

* accepted telegrams are stored per tc table by ``INSERT ... SELECT ... ORDER BY arrival
  ON CONFLICT (line_code, sequence_no, sent_at, raw) DO NOTHING`` (each once: a
  retransmission is skipped), selecting from the rows sent as one JSON parameter, or, for
  large groups, from a session-local staging table they were COPYed into (``STAGE_FROM``);
* in the same statement, each newly inserted row whose layout has ``forward`` gets its
  ``forward_outbox`` row (so the forwarder never sees one without the other), and one
  ``pg_notify('ccl_events', {"table", "id", "coil_number", "tc_code"})`` per new row goes
  out (delivered by PostgreSQL only if the transaction commits);
* refused telegrams go to ``rejected_telegrams`` (with a NOTIFY each);
* ``journal_progress`` moves to the batch's last record number.

Why a plain psycopg2 connection in a worker thread rather than txpostgres: at 10,000
telegrams/s, per-row ``mogrify`` costs more CPU than everything else on the reactor
together, and txpostgres cannot COPY. The worker is a one-thread SyncPool (sync_pool.py, the
threaded psycopg2 worker of every service): its thread owns the connection; the reactor only
waits for the Deferred. A lost connection is reopened on the next call.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import io
from collections.abc import Callable

import orjson
import psycopg2
from twisted.logger import Logger
from zope.interface import implementer

from ccl.adapters.storage.copy_text import copy_text
from ccl.adapters.storage.sync_pool import SyncPool
from ccl.domain.events import EVENTS_CHANNEL
from ccl.domain.journal_record import BatchOutcome, ProcessRow, RejectedRow
from ccl.ports import IProcessStore, StoreRefused

log = Logger()

#: Groups of at least this many rows go through COPY into a staging table; smaller ones as one
#: statement with the rows in a JSON parameter. Why not always COPY: at commit, a transaction
#: that touched a temp table empties every ON COMMIT DELETE ROWS table of the session, which
#: rebuilds their TOAST indexes and updates pg_class: 2.5-3 ms of PostgreSQL CPU per commit
#: against 0.6-1 ms for the JSON statement (transactions of 14 rows, as at 1,000 telegrams/s,
#: which left the writer's backend at 45% of a core). From a few hundred rows on COPY is the
#: cheaper one (2,000 rows: 41-44 ms of PostgreSQL CPU against 49-55 ms).
STAGE_FROM = 300
CONFLICT_KEY = "(line_code, sequence_no, sent_at, raw)"
_LOST = (psycopg2.OperationalError, psycopg2.InterfaceError)


#: Transaction-level advisory lock key of the writers' transactions (see _apply_in).
OUTBOX_ORDER_LOCK = 0x0B0C5E0


def _quote(identifier: str) -> str:
    # Table and column names come from the layout file, whose loader only admits
    # [a-z_][a-z0-9_]*; quoting keeps even a reserved word working.
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _json_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()  # bytea's hex input format
    if isinstance(value, decimal.Decimal):
        return str(value)  # exact: numeric's own input, never a float
    raise TypeError(f"no JSON form for {type(value).__name__}")


def rows_json(group) -> str:
    """The rows of ``group`` as a JSON array of objects (column name -> value, plus ``raw``),
    in order, for ``json_populate_recordset`` with the table's row type: PostgreSQL reads
    every value with its column type's input function (text, numbers, ISO times, hex bytea)."""
    return orjson.dumps([{**row.columns, "raw": row.raw} for row in group], default=_json_default).decode()


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


@implementer(IProcessStore)
class PostgresProcessStore:
    def __init__(self, reactor, dsn: str, *, stage_from: int = STAGE_FROM):
        self._reactor = reactor
        self._dsn = dsn
        self._stage_from = stage_from
        self._worker = SyncPool(reactor, dsn, size=1, name="ccl-process-store", on_connect=self._connected)
        self._staged: set[tuple[str, tuple[str, ...]]] = set()
        self._prepared: dict[tuple, str] = {}  # statement key -> name PREPAREd on this connection

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _in_worker(self, function, *args):
        return self._worker.call(self._guarded, function, *args)

    def _connected(self, connection) -> None:
        """A new connection (the first, or after an outage): nothing of ours exists on it yet."""
        self._staged = set()
        self._prepared = {}
        with connection, connection.cursor() as cursor:
            # The writer's prepared statements take rows as one JSON value: the plan
            # does not depend on it, so plan once instead of five times per statement.
            cursor.execute("SET plan_cache_mode = force_generic_plan")

    def _guarded(self, connection, function, *args):
        # A lost connection (one of UNAVAILABLE) goes to the worker: it drops the connection
        # and fails the call with StoreUnavailable.
        try:
            return function(connection, *args)
        except _LOST:
            raise
        except psycopg2.Error as error:
            # The transaction rolled back, and with it any staging table made in it. Prepared
            # statements outlive a rollback, but which of ours exist is no longer known: all go.
            self._staged = set()
            self._prepared = {}
            self._reset(connection)
            raise StoreRefused(str(error).strip().splitlines()[0]) from None
        except Exception as error:
            # A bug of ours on some record: refuse the batch, so that the writer goes record
            # by record and only the one that triggers it is set aside (as rejected).
            log.failure("unexpected error storing MES records")
            self._worker.drop(connection)
            raise StoreRefused(f"internal error: {type(error).__name__}: {error}") from None

    def _reset(self, connection) -> None:
        """After a refused transaction: roll back and drop this connection's prepared statements
        (a connection that fails even that is closed; the next call opens a new one)."""
        if connection.closed:
            return
        try:
            connection.rollback()
            with connection, connection.cursor() as cursor:
                cursor.execute("DEALLOCATE ALL")
        except psycopg2.Error:
            self._worker.drop(connection)

    def applied_upto(self, journal: str):
        return self._in_worker(_applied_upto, journal)

    def apply(self, journal: str, rows, upto: int):
        return self._in_worker(self._apply, journal, rows, upto)

    def _apply(self, connection, journal: str, rows, upto: int) -> BatchOutcome:
        with connection, connection.cursor() as cursor:
            return self._apply_in(cursor, journal, list(rows), upto)

    def _execute_prepared(self, cursor, key: tuple, types: str, statement: Callable[[], str], params: tuple) -> None:
        """Run a statement the writer sends in every transaction as a prepared statement of this
        connection: parsing, analysing and planning the same text again and again was half of
        the PostgreSQL CPU at 1,000 telegrams/s (transactions of a dozen rows)."""
        name = self._prepared.get(key)
        if name is None:
            name = f"ccl_writer_{len(self._prepared) + 1}"
            cursor.execute(f"PREPARE {name} ({types}) AS {statement()}")
            self._prepared[key] = name
        cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)

    def _stage(self, cursor, table: str, names: tuple[str, ...]) -> str:
        stage = _quote(f"ccl_stage_{table}")
        if (table, names) not in self._staged:
            columns = _column_list(names)
            cursor.execute(f"DROP TABLE IF EXISTS {stage}")
            cursor.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DELETE ROWS AS "
                           f"SELECT 0::bigint AS ccl_n, {columns} FROM {_quote(table)} WITH NO DATA")
            self._staged.add((table, names))
        return stage

    def _apply_in(self, cursor, journal: str, rows: list, upto: int) -> BatchOutcome:
        outcome = BatchOutcome()
        # Two plant servers write the outbox: one writer transaction at a time, so outbox ids
        # become visible in id order and the forwarder never passes one committed late
        # (uncontended with one server).
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (OUTBOX_ORDER_LOCK,))
        # FOR UPDATE: a second writer on the same journal (there should be none) would wait
        # here and then skip what this one stored.
        self._execute_prepared(cursor, ("progress",), "text", lambda: (
            "SELECT applied_upto FROM journal_progress WHERE journal = $1 FOR UPDATE"), (journal,))
        found = cursor.fetchone()
        done = found[0] if found else 0
        fresh = [row for row in rows if row.number > done]
        outcome.skipped = len(rows) - len(fresh)

        groups: dict[tuple[str, tuple[str, ...]], list[ProcessRow]] = collections.defaultdict(list)
        rejected: list[RejectedRow] = []
        for row in fresh:
            if isinstance(row, ProcessRow):
                groups[(row.table, tuple(row.columns))].append(row)
            else:
                rejected.append(row)

        for (table, names), group in groups.items():
            forward = group[0].forward
            columns = _column_list(names)
            if len(group) >= self._stage_from:
                stage = self._stage(cursor, table, names)
                data = io.StringIO()
                for row in group:
                    data.write("\t".join([str(row.number), *map(copy_text, row.columns.values()), copy_text(row.raw)]))
                    data.write("\n")
                data.seek(0)
                cursor.copy_expert(f"COPY {stage} (ccl_n, {columns}) FROM STDIN", data)
                cursor.execute(_store_sql(table, names, forward, f"SELECT {columns} FROM {stage} ORDER BY ccl_n"))
            else:
                source = (f"SELECT {columns} FROM json_populate_recordset(NULL::{_quote(table)}, $1) "
                          f"WITH ORDINALITY AS v ORDER BY v.ordinality")
                self._execute_prepared(cursor, ("store", table, names, forward), "json",
                                       lambda: _store_sql(table, names, forward, source), (rows_json(group),))
            found = cursor.fetchone()
            inserted = found[0]
            tc_code = group[0].tc_code
            if inserted:
                outcome.stored[tc_code] = outcome.stored.get(tc_code, 0) + inserted
                if forward:
                    outcome.channels.add(forward)
                    outcome.forwarded.extend(_bind(forward, group, found[1] or [], found[2] or [], found[3] or []))
            if inserted < len(group):
                outcome.duplicates[tc_code] = outcome.duplicates.get(tc_code, 0) + len(group) - inserted

        if rejected:
            values = b", ".join(cursor.mogrify(
                "(%s, %s, %s, %s, %s, %s, %s, %s)",
                (_utc(r.received_at), r.peer, r.listener, r.code, r.reason, r.tc_code, r.sequence_no, r.raw))
                for r in rejected)
            cursor.execute(
                b"WITH ins AS (INSERT INTO rejected_telegrams (received_at, peer, listener, result_code, reason, "
                b"tc_code, sequence_no, raw) VALUES " + values + b" RETURNING id, tc_code) "
                b"SELECT count(pg_notify('" + EVENTS_CHANNEL.encode() + b"', json_build_object('table', "
                b"'rejected_telegrams', 'id', id, 'coil_number', NULL, 'tc_code', tc_code)::text)) "
                b"FROM (SELECT * FROM ins ORDER BY id) AS s")
            outcome.rejected = len(rejected)

        self._execute_prepared(cursor, ("advance",), "text, bigint", lambda: (
            "INSERT INTO journal_progress (journal, applied_upto, updated_at) VALUES ($1, $2, now()) "
            "ON CONFLICT (journal) DO UPDATE SET applied_upto = GREATEST(journal_progress.applied_upto, "
            "EXCLUDED.applied_upto), updated_at = now()"), (journal, upto))
        return outcome


def _column_list(names: tuple[str, ...]) -> str:
    return ", ".join(_quote(n) for n in (*names, "raw"))


def _store_sql(table: str, names: tuple[str, ...], forward: str | None, source: str) -> str:
    """Insert the rows ``source`` selects (in arrival order) into ``table``, once each; give
    the new ones their outbox rows when the layout forwards them, and their NOTIFYs. One row
    back: (inserted, and for a forwarded table the new outbox ids, sequence numbers, bytes)."""
    columns = _column_list(names)
    coil = "coil_number" if "coil_number" in names else "NULL::text"
    outbox = rows_out = ""
    if forward:
        # The new outbox rows come back (id, sequence number, bytes) so that the forwarder
        # can give its live entries their ids (see _bind).
        outbox = (f", outbox AS (INSERT INTO forward_outbox (channel, source_table, source_id, tc_code, "
                  f"sequence_no, raw) SELECT {_literal(forward)}, {_literal(table)}, id, tc_code, sequence_no, "
                  f"raw FROM ins ORDER BY id RETURNING id, sequence_no, raw)")
        rows_out = (", (SELECT array_agg(id ORDER BY id) FROM outbox), "
                    "(SELECT array_agg(sequence_no ORDER BY id) FROM outbox), "
                    "(SELECT array_agg(raw ORDER BY id) FROM outbox)")
    return (f"WITH ins AS (INSERT INTO {_quote(table)} ({columns}) {source} "
            f"ON CONFLICT {CONFLICT_KEY} DO NOTHING RETURNING id, tc_code, sequence_no, raw, {coil} AS coil_number)"
            f"{outbox} "
            f"SELECT count(pg_notify('{EVENTS_CHANNEL}', json_build_object('table', {_literal(table)}, 'id', id, "
            f"'coil_number', coil_number, 'tc_code', tc_code)::text)){rows_out} "
            f"FROM (SELECT * FROM ins ORDER BY id) AS s")


def _bind(channel: str, group: list[ProcessRow], ids, sequences, raws) -> list[tuple[str, int, int]]:
    """(channel, journal record number, outbox id) for each new outbox row of ``group``.

    A row is matched by its sequence number and bytes, the first record carrying them (in
    journal order) taking the lowest id: a retransmission in the same batch got no row.
    """
    rows: dict[tuple[int, bytes], collections.deque[int]] = collections.defaultdict(collections.deque)
    for entry_id, sequence_no, raw in zip(ids, sequences, raws):
        rows[(sequence_no, bytes(raw))].append(entry_id)
    bound = []
    for row in group:
        waiting = rows.get((row.sequence_no, row.raw))
        if waiting:
            bound.append((channel, row.number, waiting.popleft()))
    return bound


def _applied_upto(connection, journal: str) -> int:
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT applied_upto FROM journal_progress WHERE journal = %s", (journal,))
        found = cursor.fetchone()
        return found[0] if found else 0
