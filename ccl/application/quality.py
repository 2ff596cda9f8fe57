"""Use cases of the quality decisions (docs/quality.md).

``QualityWatch`` runs in ccl-defects beside the live tracker, which tells it every placement it
wrote and every coil result (``IPlacementConsumer``). Per tracked coil it keeps a
``PeriodicWatch``: placed defects go in as they come, a series confirmed or extended is stored
(``periodic_series``, its defects marked) and a newly confirmed one raises the periodic alarm.
The same placements feed the ``AlarmWatch`` (critical clusters, densities). When tracking says a
coil is done (its tail past the shear), its series are settled over the whole coil and it is
graded. Every ``alarm_check_s`` the cameras are checked for silence while the line runs and the
acknowledged event alarms are cleared. One piece of work at a time (a lock), off the tracker's
own: a fault here never stalls tracking. The detector's CPU work runs in a thread
(``in_thread``), never on the reactor.

``Grading`` grades a coil by the active rule book (on completion, again on a review), overrides a
grade (audited), edits the rule book (every save a new version, audited) and previews a draft
against the recently graded coils.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import datetime, timezone

import attrs
from twisted.internet.defer import DeferredLock, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ccl.domain.quality import grading
from ccl.domain.quality.alarms import AlarmRule, AlarmWatch, PlacedEvent, parse_rules
from ccl.domain.quality.facts import coil_facts, decision_document, facts_document
from ccl.domain.quality.periodic import PeriodicSettings, PeriodicWatch, PlacedDefect, Roll, detect_series, likely_roll
from ccl.domain.quality.settings import QualitySettings
from ccl.ports import Actor, IAuditLog, InThread, StoreRefused
from ccl.ports.quality import IGradingStore, IQualityAdmin, IQualityStore
from ccl.ports.tracking import IPlacementConsumer

log = Logger()

#: Coils whose PeriodicWatch is kept in memory (the running one and a few before it).
WATCHED_COILS = 6
#: Alert rules of the event alarms (cleared once acknowledged) and of the silent camera.
EVENT_RULES = ("quality.critical_cluster", "quality.density", "quality.periodic")
SILENT_RULE = "quality.camera_silent"


def _placed(d, settings: QualitySettings) -> PlacedDefect:
    cross = settings.cross_mm(d.camera_id, d.x_px, d.width_px)
    return PlacedDefect(d.defect_id, d.defect_type, d.metre, 0.0 if cross is None else cross, d.surface)


@implementer(IPlacementConsumer)
class QualityWatch:
    def __init__(self, store: IQualityStore, grader: "Grading", periodic: PeriodicSettings,
                 settings: QualitySettings, cameras: list[str], clock, in_thread: InThread):
        self.store = store
        #: the roll-mark detector runs here, off the reactor (a coil's run is milliseconds to
        #: tens of them; the lock keeps one at a time, so a watch is never touched twice at once)
        self._in_thread = in_thread
        self.grader = grader
        self.periodic = periodic
        self.settings = settings
        self.cameras = list(cameras)
        self.clock = clock
        self.alarms = AlarmWatch(())
        self.series_stored = 0  # series confirmed and stored (tests, logs)
        self._lock = DeferredLock()
        self._pending: set[int] = set()
        self._coils_done: dict[str, str] = {}  # tracked coil -> coil number, to settle and grade
        self._finished: set[str] = set()
        self._watches: OrderedDict[str, tuple[PeriodicWatch, dict[int, float]]] = OrderedDict()
        self._rolls: list[Roll] = []
        self._heard: dict[str, datetime] = {}  # camera -> its last sign of life known
        self._rules_loaded = False
        self._call = None
        self._loop: LoopingCall | None = None
        self._stopped = False

    # wiring ----------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = LoopingCall(self.check)
        self._loop.clock = self.clock
        self._loop.start(self.settings.alarm_check_s, now=True).addErrback(
            lambda f: log.failure("quality check loop ended", f))

    def stop(self) -> None:
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._call is not None and self._call.active():
            self._call.cancel()

    def idle(self):
        """Fires once the work queued so far is done (tests, shutdown)."""
        return self._lock.run(lambda: None)

    def placed(self, placements) -> None:
        ids = {p.id for p in placements if p.kind == "defect" and p.status == "placed"}
        if ids:
            self._pending |= ids
            self._soon()

    def coils(self, coils) -> None:
        for coil in coils:
            if coil.tail_at_shear is not None and coil.completeness != "running" and coil.tracked_coil not in self._finished:
                self._coils_done[coil.tracked_coil] = coil.coil_number
        if self._coils_done:
            self._soon()

    def notified(self, payload) -> None:
        """An event of ``ccl_events``: new alarm rules or a changed roll table are read again."""
        if isinstance(payload, dict) and payload.get("table") in ("system_settings", "quality_rolls"):
            self._rules_loaded = False

    def _soon(self) -> None:
        if not self._stopped and self._call is None:
            self._call = self.clock.callLater(0, self._run)

    def _run(self) -> None:
        self._call = None
        self._lock.run(self._work).addErrback(self._failed)

    def _failed(self, failure) -> None:
        log.warn("quality watch: {error}", error=failure.getErrorMessage())
        # What the watches hold may not be stored: they start again from the store next time.
        self._watches.clear()

    def check(self):
        return self._lock.run(self._check).addErrback(self._failed)

    # the work --------------------------------------------------------------------------

    @inlineCallbacks
    def _load_rules(self):
        if self._rules_loaded:
            return
        rows = yield self.store.alarm_rules()
        try:
            rules = parse_rules(rows)
        except (TypeError, ValueError) as error:
            log.warn("alarm rules not usable, keeping the previous ones: {error}", error=str(error))
            rules = self.alarms.rules
        if rules != self.alarms.rules:
            self.alarms = AlarmWatch(rules)
            for camera, at in self._heard.items():
                self.alarms.camera_seen(camera, at)
        self._rolls = [Roll(r.name, r.diameter_mm) for r in (yield self.store.rolls())]
        self._rules_loaded = True

    @inlineCallbacks
    def _work(self):
        yield self._load_rules()
        ids, self._pending = sorted(self._pending), set()
        if ids:
            yield self._take(ids)
        done, self._coils_done = self._coils_done, {}
        for tracked_coil, coil_number in sorted(done.items()):
            yield self._finish(tracked_coil, coil_number)

    @inlineCallbacks
    def _take(self, ids):
        defects = yield self.store.placed_defects(ids)
        by_coil: dict[str, list] = {}
        for d in defects:
            by_coil.setdefault(d.tracked_coil, []).append(d)
        seen = {i for _, known in self._watches.values() for i in known}
        # A defect placed again elsewhere (a late weld, a recompute): the watches that hold it
        # start again from the store, which has it where it is now.
        for tracked, (_, known) in list(self._watches.items()):
            if any(d.defect_id in known and (d.tracked_coil != tracked or known[d.defect_id] != d.metre)
                   for d in defects):
                del self._watches[tracked]
        fresh = [d for d in defects if d.defect_id not in seen and d.tracked_coil not in self._finished]
        for tracked_coil, found in sorted(by_coil.items()):
            if tracked_coil in self._finished:
                continue  # settled at completion; a review re-grades it
            entry = self._watches.get(tracked_coil)
            if entry is None:
                watch = yield self._rebuild(tracked_coil)
                keys = {(s.surface, s.defect_type) for s in watch.series}
            else:
                watch, known = entry
                new = [d for d in found if d.defect_id not in known]
                for d in new:
                    known[d.defect_id] = d.metre
                events = yield self._in_thread(watch.add, [_placed(d, self.settings) for d in new])
                keys = {(e.series.surface, e.series.defect_type) for e in events}
            if keys:
                yield self._store_series(tracked_coil, found[0].coil_number, keys, watch.series, final=False)
        alarms = self.alarms.defects([PlacedEvent(d.defect_id, d.coil_number, d.metre, d.defect_type, d.severity,
                                                  d.camera_id) for d in fresh])
        if alarms:
            yield self.store.raise_alarms(alarms)

    @inlineCallbacks
    def _rebuild(self, tracked_coil):
        """The coil's watch from every defect placed on it so far."""
        everything = yield self.store.coil_defects(tracked_coil)
        watch = PeriodicWatch(self.periodic)
        yield self._in_thread(watch.add, [_placed(d, self.settings) for d in everything])
        self._watches[tracked_coil] = (watch, {d.defect_id: d.metre for d in everything})
        while len(self._watches) > WATCHED_COILS:
            self._watches.popitem(last=False)
        return watch

    @inlineCallbacks
    def _store_series(self, tracked_coil, coil_number, keys, series, final):
        found = [(s, self._roll(s.pitch_m)) for s in series if (s.surface, s.defect_type) in keys]
        new = yield self.store.save_series(tracked_coil, coil_number, sorted(keys), found, final)
        alarms = []
        for _series_id, s in new:
            self.series_stored += 1
            log.info("periodic {type} on {coil} ({surface}): every {pitch:.3f} m, {n} marks", type=s.defect_type,
                     coil=tracked_coil, surface=s.surface, pitch=s.pitch_m, n=len(s.member_ids))
            alarms += self.alarms.series_confirmed(coil_number, s.defect_type, s.pitch_m, s.member_ids,
                                                   self._roll(s.pitch_m))
        if alarms:
            yield self.store.raise_alarms(alarms)

    def _roll(self, pitch_m: float) -> str | None:
        roll = likely_roll(pitch_m, self._rolls, self.periodic.roll_tolerance)
        return roll.name if roll else None

    @inlineCallbacks
    def _finish(self, tracked_coil, coil_number):
        """The coil is done: its series settled over the whole coil, then its grade."""
        already = yield self.grader.store.graded([tracked_coil])
        self._finished.add(tracked_coil)
        self._watches.pop(tracked_coil, None)
        if tracked_coil in already:
            return
        everything = yield self.store.coil_defects(tracked_coil)
        series = yield self._in_thread(detect_series, [_placed(d, self.settings) for d in everything], self.periodic)
        keys = {(d.surface, d.defect_type) for d in everything}
        if keys:
            yield self._store_series(tracked_coil, coil_number, keys, series, final=True)
        yield self.grader.grade(tracked_coil, "completion")

    @inlineCallbacks
    def _check(self):
        yield self._load_rules()
        state = yield self.store.line_state(self.cameras)
        for camera, at in state.last_seen.items():
            before = self._heard.get(camera)
            if before is not None and at <= before:
                continue
            self._heard[camera] = at
            self.alarms.camera_seen(camera, at)
            if before is not None:  # heard again: its silent alarm is over
                yield self.store.clear_alarms(SILENT_RULE, [f"{r.name}:camera:{camera}" for r in self.alarms.rules
                                                            if r.kind == "camera_silent"])
        running = (state.speed_mpm or 0) > 0 and state.speed_age_s is not None \
            and state.speed_age_s <= self.settings.line_speed_fresh_s
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        alarms = self.alarms.tick(now, running, self.cameras)
        if alarms:
            yield self.store.raise_alarms(alarms)
        yield self.store.clear_acknowledged(list(EVENT_RULES))


class UnknownCoil(LookupError):
    pass


class Grading:
    """Grade coils by the active rule book; the rule book's versions; overrides."""

    PREVIEW_COILS = 20

    def __init__(self, store: IGradingStore, settings: QualitySettings, audit: IAuditLog | None = None):
        self.store = store
        self.settings = settings
        self._audit = audit

    async def facts(self, tracked_coil: str) -> grading.CoilFacts | None:
        coil = await self.store.coil(tracked_coil)
        if coil is None:
            return None
        defects = await self.store.coil_defects(tracked_coil)
        periodic = await self.store.periodic_types(tracked_coil)
        return coil_facts(coil, defects, periodic, self.settings)

    async def grade(self, tracked_coil: str, why: str) -> grading.Decision | None:
        """Grade the coil by the active book and store it (``why``: completion, review, regrade)."""
        facts = await self.facts(tracked_coil)
        book = await self.store.active_book()
        if facts is None or book is None:
            return None
        decision = grading.grade(facts, grading.parse_book(book.document))
        await self.store.save_grade(tracked_coil, facts.coil_number, decision, book.version, facts_document(facts), why)
        log.info("coil {coil} graded {grade}/{disposition} by rule book v{version} ({why})", coil=tracked_coil,
                 grade=decision.grade, disposition=decision.disposition, version=book.version, why=why)
        return decision

    async def reviewed(self, defect_id: int) -> grading.Decision | None:
        """A defect's review changed its coil's facts: grade that coil again (when it has a grade)."""
        tracked_coil = await self.store.graded_coil_of_defect(defect_id)
        return None if tracked_coil is None else await self.grade(tracked_coil, "review")

    async def override(self, tracked_coil: str, grade: str, disposition: str, reason: str, actor: Actor) -> None:
        """Raises ValueError for an empty reason or a disposition not known, UnknownCoil."""
        reason = (reason or "").strip()
        if not reason:
            raise ValueError("a reason is required")
        if disposition not in grading.DISPOSITIONS:
            raise ValueError(f"disposition is one of {', '.join(grading.DISPOSITIONS)}")
        book = await self.store.active_book()
        grades = grading.parse_book(book.document).grades if book else ()
        if grade not in grades:
            raise ValueError(f"grade is one of {', '.join(grades)}")
        before = await self.store.override(tracked_coil, grade, disposition, reason[:500], actor.username)
        if before is None:
            raise UnknownCoil(tracked_coil)
        await self._audit.append(actor, "grade.override", tracked_coil, "ok",
                                 {"before": before, "grade": grade, "disposition": disposition, "reason": reason})

    async def book(self):
        return await self.store.active_book()

    async def grades(self, coil_number: str) -> list[dict]:
        return await self.store.grades(coil_number)

    async def books(self, limit: int = 20):
        return await self.store.books(limit)

    async def save_book(self, document: dict, comment: str, actor: Actor):
        """Raises grading.RuleBookError. A new version, made active; audited."""
        grading.parse_book(document)
        before = await self.store.active_book()
        saved = await self.store.save_book(document, (comment or "").strip()[:200], actor.username)
        await self._audit.append(actor, "grading.rule_book", f"v{saved.version}", "ok",
                                 {"previous_version": before.version if before else None, "comment": saved.comment})
        return saved

    async def preview(self, document: dict, limit: int = PREVIEW_COILS) -> list[dict]:
        """How the recently graded coils would change under ``document`` (raises RuleBookError)."""
        draft = grading.parse_book(document)
        active = await self.store.active_book()
        current = grading.parse_book(active.document) if active else draft
        before, after = [], []
        for tracked_coil in await self.store.recent_graded(limit):
            facts = await self.facts(tracked_coil)
            if facts is None:
                continue
            before.append((tracked_coil, grading.grade(facts, current)))
            after.append((tracked_coil, grading.grade(facts, draft)))
        return [{"tracked_coil": coil, "before": decision_document(old), "after": decision_document(new),
                 "reasons": list(new.reasons)} for coil, old, new in grading.changes(before, after)]


def parse_document(text: str) -> dict:
    """The JSON text of a rule book as typed in the editor (raises RuleBookError)."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise grading.RuleBookError({"json": str(error)}) from None
    if not isinstance(document, dict):
        raise grading.RuleBookError({"json": "a rule book is an object with grades and rules"})
    return document


class RollError(ValueError):
    """A roll that cannot be stored: ``errors`` maps a field to why."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class QualityAdmin:
    """The admin's quality tables: the roll table and the live alarm rules (both audited)."""

    def __init__(self, store: IQualityAdmin, audit: IAuditLog):
        self._store = store
        self._audit = audit

    async def rolls(self):
        return await self._store.rolls()

    async def save_roll(self, roll_id: int | None, name: str, diameter: str, location: str, notes: str,
                        actor: Actor) -> dict:
        """Raises RollError (bad field, name taken), UnknownRoll."""
        errors = {}
        name = (name or "").strip()
        if not 1 <= len(name) <= 80:
            errors["name"] = "1-80 characters"
        try:
            diameter_mm = float(diameter)
            if not 0 < diameter_mm < 10_000:
                raise ValueError
        except (TypeError, ValueError):
            errors["diameter_mm"] = "a diameter in mm, above 0 and below 10000"
            diameter_mm = 0.0
        if errors:
            raise RollError(errors)
        try:
            saved = await self._store.save_roll(roll_id, name, diameter_mm, (location or "").strip()[:200],
                                                (notes or "").strip()[:1000], actor.username)
        except StoreRefused as error:
            raise RollError({"name": str(error)}) from None
        if saved is None:
            raise UnknownRoll(roll_id)
        before, after = saved
        await self._audit.append(actor, "quality.roll", after["name"], "ok", {"before": before, "after": after})
        return after

    async def delete_roll(self, roll_id: int, actor: Actor) -> None:
        gone = await self._store.delete_roll(roll_id)
        if gone is None:
            raise UnknownRoll(roll_id)
        await self._audit.append(actor, "quality.roll.delete", gone["name"], "ok", {"before": gone})

    async def alarm_rules(self) -> list[dict]:
        return await self._store.alarm_rules()

    async def save_alarm_rules(self, text: str, actor: Actor) -> list[dict]:
        """The rules as JSON text (a list of rule objects); raises AlarmRulesError."""
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise AlarmRulesError(f"JSON: {error}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise AlarmRulesError("a list of rule objects")
        unknown = sorted({k for r in rows for k in r} - set(attrs.fields_dict(AlarmRule)))
        if unknown:
            raise AlarmRulesError(f"unknown fields: {', '.join(unknown)}")
        try:
            rules = parse_rules(rows)
        except (TypeError, ValueError) as error:
            raise AlarmRulesError(str(error)) from None
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise AlarmRulesError("rule names must be unique")
        before = await self._store.alarm_rules()
        await self._store.save_alarm_rules(rows, actor.username)
        await self._audit.append(actor, "quality.alarm_rules", "alarm_rules", "ok", {"before": before, "after": rows})
        return rows


class UnknownRoll(LookupError):
    pass


class AlarmRulesError(ValueError):
    pass
