"""The MES writer's two ways into PostgreSQL (rows as one JSON parameter of a prepared
statement, or COPY into a staging table for large groups) store exactly the same rows, and
a refused batch leaves the connection usable for the next one."""

import datetime

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.application.store_telegrams import row_for
from ccl.domain.journal_record import TELEGRAM, JournalRecord, ProcessRow
from ccl.ports import StoreRefused
from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, cut, schedule, speed, wpd

TABLES = ("tc_4000_schedule", "tc_4001_cut", "tc_4002_wpd", "tc_4003_speed")


def records(first: int = 1) -> list[JournalRecord]:
    raws = []
    for n in range(1, 41):
        raws += [schedule(n, coil=f"C{n:05d}", customer="동국씨엠 '따옴표' \\ 탭\t"), cut(n, coil=f"C{n:05d}"),
                 wpd(n), speed(n, mpm=n)]
    raws.append(speed(7, mpm=7))  # a retransmission: stored once
    return [JournalRecord(number=first + i, kind=TELEGRAM, received_at=1751524146.25 + i, peer="127.0.0.1:5",
                          listener="mes", raw=raw) for i, raw in enumerate(raws)]


def stored(dsn: str) -> dict:
    tables = {table: query(dsn, f"SELECT to_jsonb(t) - 'id' - 'created_at' FROM {table} t ORDER BY id")
              for table in TABLES}
    tables["forward_outbox"] = query(dsn, "SELECT channel, source_table, tc_code, sequence_no, raw, state "
                                          "FROM forward_outbox ORDER BY id")
    return tables


class WritePathTests(TestCase):
    def store(self, stage_from: int):
        dsn = fresh_database(self)
        store = PostgresProcessStore(reactor, dsn, stage_from=stage_from)
        store.start()
        self.addCleanup(store.stop)
        return dsn, store

    @defer.inlineCallbacks
    def test_json_and_copy_paths_store_the_same_rows(self):
        """The JSON-parameter and the COPY paths store the same rows, skip the same retransmission, forward the same."""
        rows = [row_for(record, LAYOUTS) for record in records()]
        results = {}
        for stage_from in (1, 10 ** 6):  # every group by COPY; every group as JSON
            dsn, store = self.store(stage_from)
            outcome = yield store.apply("j-paths", rows, rows[-1].number)
            results[stage_from] = (stored(dsn), outcome)
        (copied, by_copy), (sent, by_json) = results[1], results[10 ** 6]
        self.assertEqual(sent, copied)
        self.assertEqual(len(sent["tc_4003_speed"]), 40)  # the retransmission skipped
        self.assertEqual(by_json.duplicates, {"4003": 1})
        self.assertEqual(by_json.stored, by_copy.stored)
        self.assertEqual(by_json.forwarded, by_copy.forwarded)
        self.assertEqual(len(by_json.forwarded), 120)  # 4000, 4002, 4003 forward; 4001 never
        first = sent["tc_4000_schedule"][0][0]
        self.assertEqual(first["customer_name"], "동국씨엠 '따옴표' \\ 탭\t")
        self.assertEqual(first["thickness"], 0.372)
        self.assertEqual(datetime.datetime.fromisoformat(first["sent_at"]),
                         datetime.datetime(2025, 7, 3, 6, 29, 6, tzinfo=datetime.timezone.utc))
        self.assertEqual(bytes.fromhex(sent["forward_outbox"][0][4].tobytes().hex()), rows[0].raw)

    @defer.inlineCallbacks
    def test_a_refused_batch_leaves_the_connection_ready_for_the_next(self):
        """A batch PostgreSQL refuses raises StoreRefused, and the next batch on the same connection is stored."""
        dsn, store = self.store(10 ** 6)
        good = [row_for(record, LAYOUTS) for record in records()[:8]]
        yield store.apply("j-refused", good[:4], good[3].number)  # statements now prepared
        last = good[7]  # a 4003 line speed
        bad = ProcessRow(number=last.number, table=last.table, columns={**last.columns, "line_speed": "fast"},
                         tc_code=last.tc_code, sequence_no=last.sequence_no, coil_number=None, raw=last.raw,
                         forward=last.forward)
        with self.assertRaises(StoreRefused):
            yield store.apply("j-refused", [bad], bad.number)
        yield store.apply("j-refused", good[4:], good[-1].number)
        self.assertEqual(query(dsn, "SELECT count(*) FROM tc_4003_speed")[0][0], 2)
        self.assertEqual(query(dsn, "SELECT applied_upto FROM journal_progress WHERE journal = 'j-refused'")[0][0],
                         good[-1].number)
