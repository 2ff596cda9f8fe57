"""Rotated log files: whole lines, nothing lost, tails across the rotation boundary."""

import os
import re

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ccl.orchestrator.backoff import RestartPolicy
from ccl.orchestrator.logfiles import LineSplitter, RotatingLog, tail_lines
from ccl.orchestrator.monitor import Orchestrator
from tests.support.orchestrator import settings, spec, wait_for

LINE = re.compile(r"^line (\d{6}) x{40}$")


def all_lines(path: str, keep: int) -> list[str]:
    """Every line of the log and its rotated files, oldest first."""
    lines = []
    for index in range(keep, 0, -1):
        rotated = f"{path}.{index}"
        if os.path.exists(rotated):
            lines += open(rotated, encoding="utf-8").read().splitlines()
    return lines + open(path, encoding="utf-8").read().splitlines()


class RotatingLogTests(SynchronousTestCase):
    def test_rotation_keeps_whole_lines_and_n_files(self):
        """A rotating log keeps N files of whole lines under the size limit, and its tail reads across files."""
        path = os.path.join(os.path.abspath(self.mktemp()), "x.log")
        log = RotatingLog(path, max_bytes=1000, keep=3)
        self.addCleanup(log.close)
        for number in range(500):
            log.write_lines([f"entry {number:04d}".encode()])
        files = sorted(os.listdir(os.path.dirname(path)))
        self.assertEqual(files, ["x.log", "x.log.1", "x.log.2", "x.log.3"])
        for name in files:
            text = open(os.path.join(os.path.dirname(path), name)).read()
            self.assertTrue(text.endswith("\n"))
            self.assertLessEqual(len(text), 1000)
            for line in text.splitlines():
                self.assertRegex(line, r"^entry \d{4}$")
        # the newest lines, across the boundary between x.log.1 and x.log
        live = open(path).read().splitlines()
        tail = tail_lines(path, len(live) + 5, 3)
        self.assertEqual(tail, [f"entry {n:04d}" for n in range(500 - len(live) - 5, 500)])
        self.assertEqual(log.tail(0), [])

    def test_tail_of_a_missing_file_is_empty(self):
        """The tail of a log file that does not exist is empty."""
        self.assertEqual(tail_lines(os.path.abspath(self.mktemp()), 10, 3), [])

    def test_long_tail_reads_backwards_over_blocks(self):
        """A tail of thousands of lines reads backwards over many blocks and returns exactly the newest."""
        path = os.path.join(os.path.abspath(self.mktemp()), "big.log")
        log = RotatingLog(path, max_bytes=10_000_000, keep=2)
        self.addCleanup(log.close)
        log.write_lines([f"{n:05d} ".encode() + b"y" * 200 for n in range(6000)])
        tail = log.tail(5000)
        self.assertEqual(len(tail), 5000)
        self.assertTrue(tail[0].startswith("01000 "))
        self.assertTrue(tail[-1].startswith("05999 "))

    def test_splitter_makes_whole_lines_of_pieces(self):
        """Pieces of output become whole lines (CRLF too), over-long lines are cut, the rest flushed."""
        splitter = LineSplitter(max_line=10)
        self.assertEqual(splitter.feed(b"ab"), [])
        self.assertEqual(splitter.feed(b"c\r\nde"), [b"abc"])
        self.assertEqual(splitter.feed(b"f\n" + b"z" * 25), [b"def", b"z" * 10, b"z" * 10])
        self.assertEqual(splitter.flush(), [b"z" * 5])

    def test_followers_get_new_lines(self):
        """A follower gets the lines written while it follows, and none after it stops."""
        path = os.path.join(os.path.abspath(self.mktemp()), "f.log")
        log = RotatingLog(path, max_bytes=100000, keep=2)
        self.addCleanup(log.close)
        got = []
        unsubscribe = log.follow(got.extend)
        log.write_lines([b"one", b"two"])
        unsubscribe()
        log.write_lines([b"three"])
        self.assertEqual(got, ["one", "two"])


class PolicyTests(SynchronousTestCase):
    def test_first_restart_immediate_then_exponential_capped_then_fatal(self):
        """The first restart is immediate, the next ones back off exponentially to a cap, then the service is fatal."""
        policy = RestartPolicy(restart_delay=1, restart_delay_max=3, stable_after=10, fatal_after=6)
        delays = [policy.exited(0.5) for _ in range(6)]
        self.assertEqual([d.delay for d in delays[:5]], [0, 1, 2, 3, 3])
        self.assertTrue(delays[5].fatal)

    def test_stable_run_resets(self):
        """A run longer than stable_after forgets the earlier crashes."""
        policy = RestartPolicy(restart_delay=1, restart_delay_max=30, stable_after=10, fatal_after=3)
        policy.exited(1)
        self.assertEqual(policy.exited(1).delay, 1)
        self.assertEqual(policy.exited(60).delay, 0)
        # the past is forgotten: the next quick crash is a first one again, and no fatal yet
        self.assertEqual(policy.exited(1).delay, 0)
        self.assertEqual(policy.exited(1).delay, 1)
        self.assertFalse(policy.exited(60).fatal)


class ChildLogTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_child_output_rotates_without_losing_or_cutting_lines(self):
        """A chatty child's output rotates without losing or cutting a line, and its tail matches the files."""
        count = 3000
        s = settings(self, log_max_bytes="20000", log_keep="20")
        monitor = Orchestrator(reactor, [spec("chatty", "print_lines", str(count))], s)
        monitor.startService()
        self.addCleanup(lambda: monitor.stopService().addCallback(lambda _: monitor.close_logs()))
        child = monitor.get("chatty")
        path = str(s.logs / "chatty.log")
        # stdout and stderr are two pipes: "done" may come before the last stderr lines
        yield wait_for(lambda: len([line for line in all_lines(path, 20) if line.startswith(("line ", "done"))])
                       == count + 1, "all lines written")
        self.assertTrue(os.path.exists(path + ".1"), "the log rotated")
        lines = all_lines(path, 20)
        numbered = [line for line in lines if line.startswith("line ")]
        for line in numbered:
            self.assertRegex(line, LINE)  # whole lines only, never two half lines on one
        self.assertEqual(sorted(int(LINE.match(line).group(1)) for line in numbered), list(range(1, count + 1)))
        # the tail crosses the rotation boundary and equals the files' own last lines
        live = open(path, encoding="utf-8").read().splitlines()
        wanted = len(live) + 50
        self.assertEqual(child.log.tail(wanted), lines[-wanted:])
