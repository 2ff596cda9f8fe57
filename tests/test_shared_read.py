"""SharedRead: callers that ask while a read is under way get that read's answer (or its
failure); once it has finished, the next caller starts a new read."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.adapters.web.ingest.shared_read import SharedRead


class SharedReadTests(TestCase):
    def setUp(self):
        self.started: list[defer.Deferred] = []
        self.shared = SharedRead(self.read)

    def read(self) -> defer.Deferred:
        self.started.append(defer.Deferred())
        return self.started[-1]

    def test_callers_during_a_read_share_it(self):
        """Callers that ask while a read runs all get that one read's answer."""
        first, second, third = self.shared(), self.shared(), self.shared()
        self.assertEqual((len(self.started), self.shared.waiting), (1, 3))
        self.started[0].callback({"total": 7})
        self.assertEqual([self.successResultOf(d) for d in (first, second, third)], [{"total": 7}] * 3)
        self.assertEqual(self.shared.waiting, 0)

    def test_the_next_caller_after_a_read_reads_afresh(self):
        """A caller after a finished read starts a new read and gets its own answer."""
        first = self.shared()
        self.started[0].callback(1)
        second = self.shared()
        self.assertEqual((len(self.started), self.shared.runs), (2, 2))
        self.started[1].callback(2)
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (1, 2))

    def test_a_failed_read_fails_every_waiter_and_the_next_call_tries_again(self):
        """A failed read fails every waiting caller, and the next caller reads again."""
        first, second = self.shared(), self.shared()
        self.started[0].errback(RuntimeError("database away"))
        for waiter in (first, second):
            self.assertEqual(str(self.failureResultOf(waiter, RuntimeError).value), "database away")
        third = self.shared()
        self.started[1].callback("back")
        self.assertEqual(self.successResultOf(third), "back")

    def test_a_read_that_raises_at_once_fails_its_caller_without_sticking(self):
        """A read that raises at once fails its caller and leaves nobody waiting, so the next call reads again."""
        def broken():
            raise ValueError("bad statement")

        shared = SharedRead(broken)
        self.failureResultOf(shared(), ValueError)
        self.assertEqual(shared.waiting, 0)
        self.failureResultOf(shared(), ValueError)
        self.assertEqual(shared.runs, 2)

    def test_a_caller_that_gives_up_does_not_keep_the_answer_from_the_others(self):
        """A caller that cancels does not cancel the read: the other callers still get its answer."""
        first, second = self.shared(), self.shared()
        first.cancel()  # e.g. its client disconnected
        self.failureResultOf(first, defer.CancelledError)
        self.started[0].callback("figures")
        self.assertEqual(self.successResultOf(second), "figures")
        self.assertEqual(self.shared.waiting, 0)
