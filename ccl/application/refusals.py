"""Use cases: look at the telegrams we refused, look at the dead letters, send one again.

Written against the ports only (``IRejectedTelegrams``, ``IDeadLetters``); the clock is an
input (an ``IReactorTime``), so "today" for the default period and the time of a re-send are
the caller's, never the wall clock read here.

Sending a dead letter again (``DeadLetters.resend``) makes the refused outbox row pending
again, in one transaction with its audit row. The forwarder of ccl-mes (another process) picks
it up with its next safety-net poll, within ``[gokiwon] poll_interval``, and sends it ahead of
the entries still waiting in that channel (it has the oldest id), after those already in
flight; it goes out once more, and then again only as any entry does (no answer within
``ack_timeout``). A second re-send of the same entry before it is refused again is refused
(``NotDead``): the row is pending or delivered then.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import Deferred, inlineCallbacks

from ccl.domain.plant_time import plant_today
from ccl.domain.refusals import DeadLetterFilter, NotDead, RejectedFilter, UnknownEntry
from ccl.domain.telegrams import Layouts
from ccl.domain.telegrams.dissect import Dissection, dissect
from ccl.ports import Actor, IDeadLetters, IRejectedTelegrams, OutboxRecord, RejectedTelegram


class RejectedTelegrams:
    def __init__(self, store: IRejectedTelegrams, layouts: Layouts, clock) -> None:
        self._store = store
        self._layouts = layouts
        self._clock = clock

    @property
    def tc_codes(self) -> tuple[str, ...]:
        """Every TC code of the layout file (for a filter's choices)."""
        return tuple(sorted(self._layouts.by_tc))

    def choose(self, args: Mapping[str, str]) -> RejectedFilter:
        """The filter of query arguments; raises BadFilter."""
        return RejectedFilter.from_args(args, plant_today(self._clock))

    def search(self, chosen: RejectedFilter) -> Deferred:
        """Deferred[Listing] of RejectedTelegram, newest first (raw: the first bytes only)."""
        return self._store.page(chosen)

    @inlineCallbacks
    def show(self, rejected_id: int):
        """Deferred[(RejectedTelegram, Dissection)]; fails with UnknownEntry."""
        found: RejectedTelegram | None = yield self._store.get(rejected_id)
        if found is None:
            raise UnknownEntry(f"no rejected telegram {rejected_id}")
        view: Dissection = dissect(found.raw, self._layouts)
        return found, view


class DeadLetters:
    def __init__(self, store: IDeadLetters, layouts: Layouts, clock) -> None:
        self._store = store
        self._layouts = layouts
        self._clock = clock

    @property
    def channels(self) -> tuple[str, ...]:
        """The forwarding channels of the layout file."""
        return tuple(self._layouts.channels)

    @property
    def tc_codes(self) -> tuple[str, ...]:
        """The TC codes that are forwarded."""
        return tuple(sorted(tc for tc, layout in self._layouts.by_tc.items() if layout.forward))

    def choose(self, args: Mapping[str, str]) -> DeadLetterFilter:
        return DeadLetterFilter.from_args(args, plant_today(self._clock))

    def search(self, chosen: DeadLetterFilter) -> Deferred:
        """Deferred[Listing] of OutboxRecord (raw: the first bytes only)."""
        return self._store.page(chosen)

    @inlineCallbacks
    def show(self, entry_id: int):
        """Deferred[(OutboxRecord, Dissection)]; fails with UnknownEntry."""
        found: OutboxRecord | None = yield self._store.get(entry_id)
        if found is None:
            raise UnknownEntry(f"no outbox entry {entry_id}")
        return found, dissect(found.raw, self._layouts)

    @inlineCallbacks
    def resend(self, entry_id: int, actor: Actor):
        """Send dead letter ``entry_id`` once more on behalf of ``actor``: Deferred[OutboxRecord]
        (now pending). Audited in every outcome; fails with UnknownEntry, or NotDead when the
        entry is not refused (pending, delivered: already on its way or done)."""
        outcome = yield self._store.requeue(entry_id, self._clock.seconds(), actor)
        if outcome.entry is None:
            raise UnknownEntry(f"no outbox entry {entry_id}")
        if not outcome.requeued:
            raise NotDead(entry_id, outcome.entry.state)
        return outcome.entry
