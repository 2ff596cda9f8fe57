"""The inspection rules (``system_settings``) and the operators' reviews of defects
(``defect_detections`` review columns, ``defect_reviews``) in PostgreSQL."""

from __future__ import annotations

import json

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, notify_sql, port_errors
from ccl.domain import inspection_settings
from ccl.ports import IDefectReviewStore, ISettingsStore, Review, ReviewConflict, ReviewedDefect, ReviewEntry

SETTING_KEYS = ("defect_types", "severity_thresholds", "review_threshold")
_DEFECT = ", ".join(a.name for a in ReviewedDefect.__attrs_attrs__)
_REVIEW = ", ".join(a.name for a in ReviewEntry.__attrs_attrs__)


@port_errors
@implementer(ISettingsStore)
class SettingsStore:
    def __init__(self, db: Database):
        self._db = db

    async def load(self) -> inspection_settings.InspectionSettings:
        rows = await self._db.runQuery("SELECT key, value FROM system_settings WHERE key = ANY(%s)",
                                       (list(SETTING_KEYS),))
        return inspection_settings.from_rows(dict(rows))

    def save(self, settings: inspection_settings.InspectionSettings, by: str) -> defer.Deferred:
        @defer.inlineCallbacks
        def store(cursor):
            for key, value in settings.as_rows().items():
                yield cursor.execute(
                    "INSERT INTO system_settings (key, value, updated_at, updated_by) VALUES (%s, %s, now(), %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(),"
                    " updated_by = EXCLUDED.updated_by",
                    (key, json.dumps(value, ensure_ascii=False), by))

        return self._db.runInteraction(store)


@port_errors
@implementer(IDefectReviewStore)
class DefectReviewStore:
    def __init__(self, db: Database):
        self._db = db

    def apply(self, review: Review) -> defer.Deferred:
        @defer.inlineCallbacks
        def apply(cursor):
            yield cursor.execute("SELECT defect_type, review_status, coil_number FROM defect_detections"
                                 " WHERE id = %s FOR UPDATE", (review.defect_id,))
            row = cursor.fetchone()
            if row is None:
                return None
            current_type, previous_status, coil = row
            reclassify = review.new_type is not None
            if reclassify and review.new_type == current_type:
                raise ReviewConflict(f"the defect is already of type {current_type!r}")
            to_type = review.new_type if reclassify else current_type
            yield cursor.execute(
                "UPDATE defect_detections SET review_status = %s, reviewed_by = %s, reviewed_at = now(),"
                " review_comment = %s, defect_type = %s,"
                " original_defect_type = CASE WHEN %s THEN COALESCE(original_defect_type, defect_type)"
                "                        ELSE original_defect_type END"
                f" WHERE id = %s RETURNING {_DEFECT}",
                (review.status, review.by, review.comment, to_type, reclassify, review.defect_id))
            defect = ReviewedDefect(*cursor.fetchone())
            yield cursor.execute(
                "INSERT INTO defect_reviews (defect_id, action, previous_status, from_type, to_type, comment,"
                f" reviewed_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_REVIEW}",
                (review.defect_id, review.action, previous_status, current_type, to_type, review.comment,
                 review.by))
            entry = ReviewEntry(*cursor.fetchone())
            yield cursor.execute(notify_sql(), (json.dumps({
                "table": "defect_reviews", "id": entry.id, "defect_id": review.defect_id, "coil_number": coil,
                "action": review.action, "review_status": defect.review_status, "defect_type": to_type,
                "reviewed_by": review.by}, ensure_ascii=False),))
            return defect, entry

        return self._db.runInteraction(apply)

    async def defect(self, defect_id: int) -> ReviewedDefect | None:
        rows = await self._db.runQuery(f"SELECT {_DEFECT} FROM defect_detections WHERE id = %s", (defect_id,))
        return ReviewedDefect(*rows[0]) if rows else None

    async def history(self, defect_id: int) -> list[ReviewEntry]:
        rows = await self._db.runQuery(
            f"SELECT {_REVIEW} FROM defect_reviews WHERE defect_id = %s ORDER BY reviewed_at, id", (defect_id,))
        return [ReviewEntry(*row) for row in rows]
