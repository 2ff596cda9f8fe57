"""The UI's read ports (ccl/ports/ui_reads.py) over the query modules of this package."""

from __future__ import annotations

import datetime
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, port_errors
from ccl.adapters.storage.ui_queries import coil, dashboard, history, models, stats
from ccl.domain.coil_search import Search
from ccl.ports import ICoilHistory, ICoilReads, IDashboardReads, IModelRegistry, IStatistics


@port_errors
@implementer(IDashboardReads)
class DashboardReads:
    def __init__(self, db: Database):
        self._db = db

    def dashboard(self, now: datetime.datetime) -> defer.Deferred:
        return dashboard.dashboard(self._db, now)

    async def part(self, name: str, now: datetime.datetime, after_id: int | None = None) -> Any:
        db = self._db
        if name == "coil":
            return await dashboard.current_coil(db)
        if name == "speed":
            return await dashboard.line_speed(db, now, after_id=after_id)
        if name == "images":
            return await dashboard.latest_image_pair(db)
        if name == "defects":
            return await dashboard.recent_defects(db, after_id=after_id)
        if name == "today":
            return await dashboard.today_counts(db, now)
        if name == "links":
            return await dashboard.link_states(db)
        if name == "alerts":
            return await dashboard.open_alerts(db)
        if name == "coil_defects":
            current = await dashboard.current_coil(db)
            return {"coil": current,
                    "defects": (await dashboard.coil_defects(db, current["coil_number"])) if current else []}
        raise KeyError(name)


@port_errors
@implementer(ICoilReads)
class CoilReads:
    def __init__(self, db: Database):
        self._db = db

    def coil_detail(self, coil_number: str, now: datetime.datetime) -> defer.Deferred:
        return coil.coil_detail(self._db, coil_number, now)

    def image_record(self, image_id: int) -> defer.Deferred:
        return coil.image_record(self._db, image_id)

    def image_defects(self, image_id: int) -> defer.Deferred:
        return coil.image_defects(self._db, image_id)

    def image_partner(self, image_id: int) -> defer.Deferred:
        return coil.image_partner(self._db, image_id)

    async def defect_types(self) -> list[str]:
        rows = await self._db.runQuery("SELECT value FROM system_settings WHERE key = 'defect_types'")
        value = rows[0][0] if rows else []
        return [str(v) for v in value] if isinstance(value, list) else []


@port_errors
@implementer(ICoilHistory)
class CoilHistory:
    def __init__(self, db: Database):
        self._db = db

    def search(self, query: Search) -> defer.Deferred:
        return history.search(self._db, query)

    def stream_export(self, query: Search, write_rows) -> defer.Deferred:
        return history.stream_export(self._db, query, write_rows)


@port_errors
@implementer(IStatistics)
class Statistics:
    def __init__(self, db: Database):
        self._db = db

    def statistics(self, date_from: datetime.date, date_to: datetime.date) -> defer.Deferred:
        return stats.statistics(self._db, date_from, date_to)


@port_errors
@implementer(IModelRegistry)
class ModelRegistry:
    def __init__(self, db: Database):
        self._db = db

    def models_page(self) -> defer.Deferred:
        return models.models_page(self._db)

    def mark_deployed(self, model_id: int) -> defer.Deferred:
        return models.mark_deployed(self._db, model_id)

    def register(self, registration, registered_by: str) -> defer.Deferred:
        return models.register(self._db, registration, registered_by)

    def models(self) -> defer.Deferred:
        return models.models(self._db)
