"""The MES writer's adaptive batching: an idle writer commits at once; under back-to-back
load the next transaction waits for ``min_interval`` and takes everything queued meanwhile."""

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from ccl.adapters.storage.process_store import PostgresProcessStore
from ccl.application.store_telegrams import TelegramWriter
from ccl.domain.journal_record import TELEGRAM, JournalRecord
from ccl.domain.metrics import Registry, parse_text
from ccl.ports import IWriterConsumer
from tests.support.database import fresh_database, query
from tests.support.mes import LAYOUTS, speed, wait_for


def record(number: int) -> JournalRecord:
    return JournalRecord(number=number, kind=TELEGRAM, received_at=1751524146.0, peer="127.0.0.1:1",
                         listener="mes", raw=speed(number))


@implementer(IWriterConsumer)
class Released:
    """The writer's consumer here: the journal number each commit reached (what the MES
    pipeline lets the journal release)."""

    def __init__(self, upto: list[int]):
        self.upto = upto

    def committed(self, outcome, upto):
        self.upto.append(upto)


def transactions(registry: Registry) -> float:
    return sum(value for name, labels, value in parse_text(registry.render())
               if name == "ccl_mes_pg_writes_total" and labels == {"result": "ok"})


def speeds(dsn):
    return [row[0] for row in query(dsn, "SELECT sequence_no FROM tc_4003_speed ORDER BY id")]


class PacingTests(TestCase):
    def start(self, min_interval: float, batch_size: int = 100):
        self.dsn = fresh_database(self)
        store = PostgresProcessStore(reactor, self.dsn)
        store.start()
        self.clock = task.Clock()
        self.registry = Registry()
        self.released: list[int] = []
        writer = TelegramWriter(store, LAYOUTS, self.clock, batch_size=batch_size, registry=self.registry,
                                min_interval=min_interval)
        writer.start("j-pacing", Released(self.released))
        self.addCleanup(store.stop)
        self.addCleanup(writer.stop)
        return writer

    @defer.inlineCallbacks
    def test_idle_writer_commits_at_once_and_paces_back_to_back_batches(self):
        """An idle writer commits at once; right after a commit it waits min_interval, then takes all queued in one."""
        writer = self.start(min_interval=10.0)
        yield wait_for(lambda: writer.applied_upto == 0, what="progress read")
        writer.enqueue([record(1)])
        # No clock advance: an idle writer does not wait for more records.
        yield wait_for(lambda: writer.applied_upto == 1, what="first record committed")
        self.assertEqual(speeds(self.dsn), [1])

        writer.enqueue([record(2)])
        writer.enqueue([record(3), record(4)])
        # Right after a transaction the next one waits for the interval ...
        for _ in range(20):
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(writer.applied_upto, 1)
        self.assertEqual(writer.backlog, 3)
        # ... and then takes all that queued meanwhile in ONE transaction.
        self.clock.advance(10.0)
        yield wait_for(lambda: writer.applied_upto == 4, what="paced batch committed")
        self.assertEqual(speeds(self.dsn), [1, 2, 3, 4])
        self.assertEqual(transactions(self.registry), 2)
        self.assertEqual(self.released, [1, 4])

        # Idle long enough: the next record goes at once again.
        self.clock.advance(30.0)
        writer.enqueue([record(5)])
        yield wait_for(lambda: writer.applied_upto == 5, what="record after idle time committed")
        self.assertEqual(transactions(self.registry), 3)

    @defer.inlineCallbacks
    def test_a_full_batch_never_waits(self):
        """A full batch is committed at once, whatever the pacing interval."""
        writer = self.start(min_interval=10.0, batch_size=3)
        yield wait_for(lambda: writer.applied_upto == 0, what="progress read")
        writer.enqueue([record(1)])
        yield wait_for(lambda: writer.applied_upto == 1, what="first record committed")
        writer.enqueue([record(n) for n in range(2, 8)])
        # Two full batches (2-4, 5-7) go without the clock moving.
        yield wait_for(lambda: writer.applied_upto == 7, what="full batches committed")
        self.assertEqual(speeds(self.dsn), list(range(1, 8)))
        self.assertEqual(transactions(self.registry), 3)

