"""Use cases of the inspection rules (관리 > settings) and the operators' defect reviews."""

from __future__ import annotations

from ccl.domain.inspection_settings import InspectionSettings
from ccl.ports import (Actor, IAuditLog, IDefectReviewStore, ISettingsStore, Review, ReviewedDefect, ReviewEntry)

#: review action -> the defect's review_status afterwards
REVIEW_STATUS = {"confirm": "confirmed", "false_positive": "false_positive", "reclassify": "reclassified"}


class UnknownDefect(LookupError):
    pass


class UnknownDefectType(ValueError):
    def __init__(self, allowed: tuple[str, ...]):
        super().__init__("unknown defect type")
        self.allowed = allowed


class InspectionRules:
    def __init__(self, store: ISettingsStore, audit: IAuditLog):
        self._store = store
        self._audit = audit

    async def current(self) -> InspectionSettings:
        return await self._store.load()

    async def save(self, new: InspectionSettings, actor: Actor) -> None:
        before = await self._store.load()
        await self._store.save(new, actor.username)
        await self._audit.append(actor, "settings.update", "inspection", "ok",
                                 {"before": before.as_rows(), "after": new.as_rows()})


class DefectReviews:
    def __init__(self, store: IDefectReviewStore, rules: InspectionRules, audit: IAuditLog, grading=None):
        """``grading``: a ccl.application.quality.Grading; a review changes its coil's facts,
        so a coil already graded is graded again."""
        self._store = store
        self._rules = rules
        self._audit = audit
        self._grading = grading

    async def review(self, defect_id: int, action: str, comment: str, new_type: str | None,
                     actor: Actor) -> tuple[ReviewedDefect, ReviewEntry]:
        """Apply one review action. Raises UnknownDefectType, UnknownDefect, ReviewConflict."""
        if new_type is not None:
            allowed = (await self._rules.current()).defect_types
            if new_type not in allowed:
                raise UnknownDefectType(tuple(allowed))
        outcome = await self._store.apply(Review(defect_id, action, REVIEW_STATUS[action], comment, new_type,
                                                 actor.username))
        if outcome is None:
            raise UnknownDefect(defect_id)
        defect, entry = outcome
        await self._audit.append(actor, "defect.review", str(defect_id), "ok",
                                 {"action": action, "from_type": entry.from_type, "to_type": entry.to_type,
                                  "previous_status": entry.previous_status, "comment": comment})
        if self._grading is not None:
            await self._grading.reviewed(defect_id)
        return defect, entry

    async def history(self, defect_id: int) -> tuple[ReviewedDefect, list[ReviewEntry]]:
        defect = await self._store.defect(defect_id)
        if defect is None:
            raise UnknownDefect(defect_id)
        return defect, await self._store.history(defect_id)
