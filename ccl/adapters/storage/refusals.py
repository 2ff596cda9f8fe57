"""``rejected_telegrams`` and the dead letters of ``forward_outbox`` in PostgreSQL, for the UI.

Reads are single queries (a listing page and its capped count together). Sending a dead letter
again is one transaction: the row goes from ``refused`` back to ``pending`` only if it is still
refused (two admins clicking at once re-send it once: the second UPDATE waits for the first,
then finds it pending), and the ``audit_logs`` row commits with it, whatever the outcome.

The running forwarder (ccl-mes, another process) finds the pending row by its safety-net poll
(``[gokiwon] poll_interval``): see docs/forwarding.md for where it goes in the channel's order.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, port_errors
from ccl.domain.refusals import COUNT_CAP, DeadLetterFilter, Listing, RejectedFilter
from ccl.ports import Actor, IDeadLetters, IRejectedTelegrams, OutboxRecord, Requeued, RejectedTelegram

#: A listing carries this many leading bytes of each telegram; ``get`` carries all of them.
PREVIEW_BYTES = 48

RESEND_ACTION = "dead_letter.resend"

_REJECTED_COLUMNS = "id, received_at, peer, listener, result_code, reason, tc_code, sequence_no"
_REJECTED_WHERE = """
 WHERE received_at >= %(since)s AND received_at < %(until)s
   AND (%(tc)s = '' OR tc_code = %(tc)s)
   AND (%(code)s = '' OR result_code = %(code)s)
   AND (%(listener)s = '' OR listener = %(listener)s)"""

_OUTBOX_COLUMNS = ("id, channel, tc_code, sequence_no, state, created_at, attempts, first_sent_at, last_sent_at, "
                   "delivered_at, refused_at, refused_code, resent_count, resent_at")
#: view -> (the time column the period and the order use, the extra condition)
_VIEWS = {"dead": ("refused_at", "state = 'refused'"), "resent": ("resent_at", "resent_at IS NOT NULL")}


def _rejected(row, raw: bytes) -> RejectedTelegram:
    return RejectedTelegram(id=row[0], received_at=row[1], peer=row[2], listener=row[3], result_code=row[4].strip(),
                            reason=row[5], tc_code=row[6], sequence_no=row[7], raw=raw)


def _outbox(row) -> OutboxRecord:
    return OutboxRecord(id=row[0], channel=row[1], tc_code=row[2].strip(), sequence_no=row[3], state=row[4],
                        created_at=row[5], attempts=row[6], first_sent_at=row[7], last_sent_at=row[8],
                        delivered_at=row[9], refused_at=row[10],
                        refused_code=row[11].strip() if row[11] is not None else None,
                        resent_count=row[12], resent_at=row[13], raw=bytes(row[14]))


def _listing(rows: list, count: int, paging, make) -> Listing:
    return Listing(items=tuple(make(row) for row in rows), total=min(count, COUNT_CAP), capped=count > COUNT_CAP,
                   paging=paging)


@port_errors
@implementer(IRejectedTelegrams)
class PgRejectedTelegrams:
    def __init__(self, db: Database) -> None:
        self._db = db

    def page(self, chosen: RejectedFilter) -> defer.Deferred:
        params = {"since": chosen.period.since, "until": chosen.period.until, "tc": chosen.tc_code,
                  "code": chosen.result_code, "listener": chosen.listener, "cap": COUNT_CAP + 1,
                  "limit": chosen.paging.size, "offset": chosen.paging.offset, "preview": PREVIEW_BYTES}

        @defer.inlineCallbacks
        def read(cursor):
            yield cursor.execute(f"SELECT {_REJECTED_COLUMNS}, substring(raw FROM 1 FOR %(preview)s) "
                                 f"FROM rejected_telegrams {_REJECTED_WHERE} "
                                 f"ORDER BY received_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
            rows = cursor.fetchall()
            yield cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM rejected_telegrams {_REJECTED_WHERE} "
                                 f"LIMIT %(cap)s) AS capped", params)
            return _listing(rows, cursor.fetchone()[0], chosen.paging, lambda r: _rejected(r, bytes(r[8])))

        return self._db.runInteraction(read)

    def get(self, rejected_id: int) -> defer.Deferred:
        found = self._db.runQuery(f"SELECT {_REJECTED_COLUMNS}, raw FROM rejected_telegrams WHERE id = %s",
                                  (rejected_id,))
        return found.addCallback(lambda rows: _rejected(rows[0], bytes(rows[0][8])) if rows else None)


@port_errors
@implementer(IDeadLetters)
class PgDeadLetters:
    def __init__(self, db: Database) -> None:
        self._db = db

    def page(self, chosen: DeadLetterFilter) -> defer.Deferred:
        column, condition = _VIEWS[chosen.view]
        where = (f" WHERE {condition} AND {column} >= %(since)s AND {column} < %(until)s"
                 " AND (%(channel)s = '' OR channel = %(channel)s) AND (%(tc)s = '' OR tc_code = %(tc)s)")
        params = {"since": chosen.period.since, "until": chosen.period.until, "channel": chosen.channel,
                  "tc": chosen.tc_code, "cap": COUNT_CAP + 1, "limit": chosen.paging.size,
                  "offset": chosen.paging.offset, "preview": PREVIEW_BYTES}

        @defer.inlineCallbacks
        def read(cursor):
            yield cursor.execute(f"SELECT {_OUTBOX_COLUMNS}, substring(raw FROM 1 FOR %(preview)s) FROM forward_outbox"
                                 f"{where} ORDER BY {column} DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
            rows = cursor.fetchall()
            yield cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM forward_outbox{where} LIMIT %(cap)s) AS capped",
                                 params)
            return _listing(rows, cursor.fetchone()[0], chosen.paging, _outbox)

        return self._db.runInteraction(read)

    def get(self, entry_id: int) -> defer.Deferred:
        found = self._db.runQuery(f"SELECT {_OUTBOX_COLUMNS}, raw FROM forward_outbox WHERE id = %s", (entry_id,))
        return found.addCallback(lambda rows: _outbox(rows[0]) if rows else None)

    def requeue(self, entry_id: int, at: float, actor: Actor) -> defer.Deferred:
        @defer.inlineCallbacks
        def requeue(cursor):
            yield cursor.execute(
                f"UPDATE forward_outbox SET state = 'pending', resent_count = resent_count + 1, "
                f"resent_at = to_timestamp(%s) WHERE id = %s AND state = 'refused' RETURNING {_OUTBOX_COLUMNS}, raw",
                (at, entry_id))
            row = cursor.fetchone()
            requeued = row is not None
            if row is None:
                yield cursor.execute(f"SELECT {_OUTBOX_COLUMNS}, raw FROM forward_outbox WHERE id = %s", (entry_id,))
                row = cursor.fetchone()
            entry = _outbox(row) if row is not None else None
            if entry is None:
                result, details = "no such entry", {}
            else:
                result = "ok" if requeued else f"not dead ({entry.state})"
                details = _audit_details(entry)
            yield cursor.execute(
                "INSERT INTO audit_logs (at, actor, client_address, action, target, result, details) "
                "VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s)",
                (at, actor.username, actor.client_address, RESEND_ACTION, str(entry_id), result,
                 json.dumps(details, ensure_ascii=False)))
            return Requeued(entry=entry, requeued=requeued)

        return self._db.runInteraction(requeue)


def _audit_details(entry: OutboxRecord) -> dict[str, Any]:
    return {"channel": entry.channel, "tc_code": entry.tc_code, "sequence_no": entry.sequence_no,
            "state": entry.state, "refused_code": entry.refused_code, "attempts": entry.attempts,
            "resent_count": entry.resent_count}
