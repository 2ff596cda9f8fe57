"""Use cases of coil tracking: recompute a period, and place what is stored as it arrives.

Tracking is a deterministic function of the stored telegrams, defects and images
(ccl/domain/tracking): ``recompute`` loads what a period needs, places every detection of it,
and writes what changed (placements that moved, the coils' results, the delay log), reporting
what moved. ``LiveTracker`` keeps a model of the recent line in memory and places each new
defect or image from it at once (a fast path: one read, one write); a speed sample extends
the model and settles the placements that were provisional; a weld, a cut, a late or
out-of-order telegram, or a defect older than the model, recomputes from the moment it
affects. A periodic sweep recomputes the last ``sweep_window_s``: notifications lost while
the database was away, late heartbeats and schedules all settle within one sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import attrs
from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ccl.domain.tracking.coils import coil_at
from ccl.domain.tracking.model import LineModel, moved
from ccl.domain.tracking.records import Detection, Placement
from ccl.domain.tracking.settings import TrackingSettings
from ccl.domain.tracking.times import event_time
from ccl.ports.tracking import IPlacementConsumer, ITrackingStore

log = Logger()
EXAMPLES = 10
#: New defects and images are gathered this long before they are placed: one read and one
#: write for all that came meanwhile (at 100 single posts a second, ~25 at a time).
GATHER_S = 0.25


@attrs.define
class Recomputed:
    """What a recompute found: the model it built, every placement of the period, the report."""

    model: LineModel
    detections: list[Detection]
    placements: list[Placement]
    report: dict
    #: the placements written (new or moved) and the coils' results written
    changed: list[Placement] = attrs.field(factory=list)
    coils: list = attrs.field(factory=list)


def _where(p: Placement | None) -> dict | None:
    if p is None:
        return None
    return {"status": p.status, "tracked_coil": p.tracked_coil,
            "metre": None if p.metre is None else round(p.metre, 3),
            "exit_coil": p.exit_coil, "exit_piece": p.exit_piece,
            "exit_metre": None if p.exit_metre is None else round(p.exit_metre, 3)}


def compare(old: dict, placements: Sequence[Placement]) -> tuple[list[Placement], dict]:
    """The placements that changed, and counts (new, other coil, other metre, other details,
    unchanged) with up to EXAMPLES examples of moves."""
    changed, counts, examples = [], {"new": 0, "coil": 0, "metre": 0, "details": 0, "unchanged": 0}, []
    for p in placements:
        before = old.get((p.kind, p.id))
        if not moved(before, p):
            counts["unchanged"] += 1
            continue
        changed.append(p)
        if before is None:
            counts["new"] += 1
            continue
        if (before.tracked_coil, before.exit_coil, before.exit_piece) != (p.tracked_coil, p.exit_coil, p.exit_piece):
            counts["coil"] += 1
        elif before.metre != p.metre and not (before.metre is not None and p.metre is not None
                                              and abs(before.metre - p.metre) <= 0.001):
            counts["metre"] += 1
        else:
            counts["details"] += 1
            continue
        if len(examples) < EXAMPLES:
            examples.append({"kind": p.kind, "id": p.id, "from": _where(before), "to": _where(p)})
    return changed, {**counts, "examples": examples}


@inlineCallbacks
def recompute(store: ITrackingStore, settings: TrackingSettings, since: float, until: float | None, now: float):
    """Track [since, until) again (until None: up to now) and write what changed: Deferred[Recomputed]."""
    data, first = yield store.line_data(since, until)
    model = LineModel(data, settings)
    detections = [d for d in (yield store.detections(since, until))]
    placements = [p for p in model.place_all(detections)
                  if p.detected_at >= since and (until is None or p.detected_at < until)]
    old = yield store.placements([(p.kind, p.id) for p in placements])
    changed, report = compare(old, placements)
    yield store.save_placements(changed)
    coils = [c for c in model.coil_results()
             if c.head_wpd_at >= first - 1.0 and (until is None or c.head_wpd_at < until)]
    # The delay log of the period, and a stop or gap begun before it that lasted into it; not one
    # the loaded data begins in the middle of (its start would be the data's, not its own).
    data_start = model.profile.times[0] if len(model.profile) else since
    delays = [d for d in model.delays(now)
              if d.start > data_start and (until is None or d.start < until)
              and (d.start >= since or d.end is None or d.end >= since)]
    yield store.save_coils(coils, delays, coils_between=(first - 1.0, until), delays_between=(since, until))
    report.update(placements=len(placements), written=len(changed), coils=len(coils), delays=len(delays),
                  disagreements=sum(p.coil_disagrees for p in placements),
                  untracked=sum(p.status != "placed" for p in placements),
                  telegrams=len(data.speeds) + len(data.welds) + len(data.cuts))
    kept = {(p.kind, p.id) for p in placements}
    return Recomputed(model, [d for d in detections if (d.kind, d.id) in kept], placements, report, changed, coils)


class LiveTracker:
    """Places stored defects and images as their NOTIFYs come (``notified``), one piece of work
    at a time (a lock: a recompute and a fast placement never write over each other)."""

    _TELEGRAMS = ("tc_4003_speed", "tc_4002_wpd", "tc_4001_cut")
    _KINDS = {"tc_4003_speed": "speed", "tc_4002_wpd": "weld", "tc_4001_cut": "cut"}

    def __init__(self, store: ITrackingStore, settings: TrackingSettings, clock, *,
                 sweep_seconds: float = 60.0, sweep_window_s: float = 900.0,
                 consumer: IPlacementConsumer | None = None):
        self.store = store
        #: told of every placement written and every coil result (the quality watch)
        self.consumer = consumer
        self.settings = settings
        self.clock = clock
        self.sweep_seconds = sweep_seconds
        self.sweep_window_s = sweep_window_s
        self.model: LineModel | None = None
        #: the model tracks detections from then on (the start of the recompute that built it)
        self._covered = float("inf")
        self.placed = 0  # placements written by the fast path
        self._lock = DeferredLock()
        self._detections: dict[str, set[int]] = {"defect": set(), "image": set()}
        self._telegrams: dict[str, set[int]] = {t: set() for t in self._TELEGRAMS}
        self._provisional: dict[tuple[str, int], Detection] = {}
        self._wanted: float | None = None  # a recompute is due from then
        self._call = None
        self._loop: LoopingCall | None = None
        self._stopped = False

    # wiring ----------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = LoopingCall(self.sweep)
        self._loop.clock = self.clock
        self._loop.start(self.sweep_seconds, now=True).addErrback(
            lambda f: log.failure("tracking sweep loop ended", f))

    def stop(self) -> None:
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def notified(self, payload) -> None:
        """An event of ``ccl_events``: ``{"table", "id", ...}``."""
        if self._stopped or not isinstance(payload, dict):
            return
        table, row_id = payload.get("table"), payload.get("id")
        kind = {"defect_detections": "defect", "images": "image"}.get(table)
        if kind is not None and isinstance(row_id, int):
            self._detections[kind].add(row_id)
            self._soon(GATHER_S)
        elif table in self._telegrams and isinstance(row_id, int):
            self._telegrams[table].add(row_id)
            self._soon()
        elif table == "inspection_heartbeats":
            # a camera's coverage: the coils its period touches again
            self._want(self._heartbeat_reach(payload))
        elif table == "tc_4000_schedule":
            # a coil's MES length: the coils of the window again
            self._want(self.clock.seconds() - self.sweep_window_s)

    def _heartbeat_reach(self, payload: dict) -> float:
        """Where a heartbeat's recompute starts: the weld of the coil under its camera when its
        period began (on the server clock: the box's stamp less the camera's clock offset), so
        that coil's coverage is computed again with the rest; a period older than the model
        starts there (a recompute reaches back two welds). An event without a readable period,
        or of a camera not tracked: the window, as a sweep."""
        camera = self.settings.camera(payload.get("camera_id"))
        try:
            start = datetime.fromisoformat(payload["period_start"]).timestamp()
        except (KeyError, TypeError, ValueError):
            camera = None
        if camera is None:
            return self.clock.seconds() - self.sweep_window_s
        start -= camera.clock_offset_s
        model = self.model
        if model is None or start < self._covered or not len(model.profile) or not model.coils:
            return start
        # before the first coil known: from that coil's weld
        k = max(0, coil_at(model.heads, model.profile.position(start) - self.settings.camera_distance(camera)))
        return min(start, model.coils[k].head_at)

    def sweep(self):
        self._want(self.clock.seconds() - self.sweep_window_s)
        return self._lock.run(self._work).addErrback(self._failed)

    def _want(self, since: float) -> None:
        self._wanted = since if self._wanted is None else min(self._wanted, since)
        self._soon()

    def idle(self) -> Deferred:
        """Fires once the work queued so far is done (tests, shutdown)."""
        return self._lock.run(lambda: None)

    def _soon(self, delay: float = 0.0) -> None:
        if self._stopped:
            return
        if self._call is not None and delay == 0.0 and self._call.active():
            self._call.reset(0)  # a telegram does not wait for the gathering of detections
        if self._call is None:
            self._call = self.clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        self._lock.run(self._work).addErrback(self._failed)

    def _failed(self, failure) -> None:
        log.warn("coil tracking: {error}; the next sweep catches up", error=failure.getErrorMessage())
        # What was pending is covered by the next sweep's recompute (from the earliest moment wanted).
        self._wanted = min(self._wanted or self.clock.seconds(), self.clock.seconds() - self.sweep_window_s)

    # the work --------------------------------------------------------------------------

    @inlineCallbacks
    def _work(self):
        detections = {k: v for k, v in self._detections.items() if v}
        telegrams = {k: v for k, v in self._telegrams.items() if v}
        self._detections = {"defect": set(), "image": set()}
        self._telegrams = {t: set() for t in self._TELEGRAMS}
        if self.model is None:
            self._want(self.clock.seconds() - self.sweep_window_s)
        else:
            yield self._take_telegrams(telegrams)
        if self._wanted is not None:
            since, self._wanted = self._wanted, None
            done = yield recompute(self.store, self.settings, since, None, self.clock.seconds())
            self.model, self._covered = done.model, since
            if self.consumer is not None:
                self.consumer.placed(done.changed)
                self.consumer.coils(done.coils)
            self._provisional = {(p.kind, p.id): d for p, d in zip(done.placements, done.detections) if p.provisional}
            if done.report["written"]:
                log.info("coil tracking from {since}: {written} placements written ({new} new, {coil} to another"
                         " coil, {metre} to another metre)",
                         since=datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="seconds"), **done.report)
        elif telegrams.get("tc_4003_speed"):
            yield self._settle()
            yield self._progress()
        if detections:
            yield self._place(detections)

    @inlineCallbacks
    def _take_telegrams(self, telegrams):
        model = self.model
        offset, late_after = model.offset, self.settings.late_after_s
        for table in self._TELEGRAMS:
            ids = telegrams.get(table)
            if not ids:
                continue
            known = model.known_ids[self._KINDS[table]]
            ids = [i for i in ids if i not in known]  # already read by the last recompute
            if not ids:
                continue
            rows = yield self.store.telegrams_by_id(table, sorted(ids))
            for telegram in sorted(rows, key=lambda t: (t.received_at, t.id)):
                at, _late = event_time(telegram, offset, late_after)
                if table == "tc_4003_speed":
                    if not model.add_speed(telegram):
                        self._want(at - self.settings.max_speed_gap_s)
                elif table == "tc_4002_wpd":
                    self._want(at)
                else:  # a cut: its exit coils reach back over the coil before it
                    self._want(self._cut_reach(at))

    def _cut_reach(self, at: float) -> float:
        model = self.model
        if not len(model.profile):
            return at - self.sweep_window_s
        k = coil_at(model.heads, model.profile.position(at) - self.settings.shear_distance)
        return model.coils[max(0, k - 1)].head_at if k >= 0 else at - self.sweep_window_s

    @inlineCallbacks
    def _settle(self):
        """Place again the provisional placements the newest speed sample now covers."""
        settled = [p for p in self.model.place_all(self._provisional.values()) if not p.provisional]
        if settled:
            yield self.store.save_placements(settled)
            for p in settled:
                self._provisional.pop((p.kind, p.id), None)
            if self.consumer is not None:
                self.consumer.placed(settled)

    def _progress(self):
        """The running coil's inspected metres advance with each speed sample (live dashboard)."""
        model = self.model
        if not model.coils or not len(model.profile) or model.coils[-1].tail_at is not None:
            return None
        coil = model.coils[-1]
        return self.store.save_progress(coil.tracked_coil, model.inspected(coil))

    @inlineCallbacks
    def _place(self, detections):
        found = yield self.store.detections_by_id(sorted(detections.get("defect", ())),
                                                  sorted(detections.get("image", ())))
        model = self.model
        placements, older = [], []
        for d in found:
            p = model.place(d)
            if p.detected_at < self._covered:
                older.append(p.detected_at)
                continue
            placements.append(p)
            if p.provisional:
                self._provisional[(d.kind, d.id)] = d
        if placements:
            yield self.store.save_placements(placements)
            self.placed += len(placements)
            if self.consumer is not None:
                self.consumer.placed(placements)
        if older:  # a defect older than the model (a box that caught up): its period again
            self._want(min(older) - 1.0)
