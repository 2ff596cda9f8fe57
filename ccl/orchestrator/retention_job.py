"""The retention of the monthly partitioned tables, run by the orchestrator once a day.

``[retention] automatic`` (on by default) makes the orchestrator do what ``ccl retention run``
does: summarise the coils of every expired month into ``coil_summaries``, then drop its
partitions, in one transaction on a thread of its own (ccl/adapters/storage/partitions.py),
audited as ``retention.run`` with the actor ``orchestrator``. It is tried at start and then
whenever the UTC date changes; a month expires on the 1st, so a daily try drops it the day it
expires. Until a try succeeds on a date it is tried again every ``interval`` seconds (the
database may still be starting, or be away). With two plant servers both orchestrators try:
the drops take their tables' locks in one transaction, so the second finds nothing left.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone

from twisted.internet import defer, task
from twisted.logger import Logger

from ccl.ports import StoreUnavailable

log = Logger()

#: Seconds between tries until one succeeded on the current UTC date.
RETRY_INTERVAL_S = 600.0


class RetentionJob:
    def __init__(self, reactor, run: Callable[[date, datetime], defer.Deferred],
                 interval: float = RETRY_INTERVAL_S):
        """``run(today, now)``: one retention run; fires with its RetentionReport."""
        self._reactor = reactor
        self._run = run
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = reactor
        self._interval = interval
        self._running: defer.Deferred | None = None
        self.done_on: date | None = None
        self.last_report = None

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def stop(self) -> defer.Deferred:
        """Stops the tries; fires once a run under way has ended."""
        if self._loop.running:
            self._loop.stop()
        if self._running is None:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._running.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    def tick(self) -> defer.Deferred:
        """One try, unless today's run succeeded already or one is under way."""
        now = datetime.fromtimestamp(self._reactor.seconds(), timezone.utc)
        today = now.date()
        if self.done_on == today or self._running is not None:
            return defer.succeed(None)
        d = self._running = self._run(today, now)

        def done(report):
            self.done_on, self.last_report = today, report
            if report.dropped:
                log.info("retention: dropped {count} expired partitions ({partitions}); {coils} coil summaries",
                         count=len(report.dropped), partitions=", ".join(report.dropped), coils=report.summarized)
            else:
                log.info("retention: nothing expired on {today}", today=today.isoformat())

        def failed(failure):
            if failure.check(StoreUnavailable):
                log.info("retention: database unavailable, tried again in {seconds:g} s", seconds=self._interval)
            else:
                log.failure("retention failed, nothing dropped; tried again in {seconds:g} s", failure,
                            seconds=self._interval)

        def finished(_):
            self._running = None
        return d.addCallbacks(done, failed).addBoth(finished)
