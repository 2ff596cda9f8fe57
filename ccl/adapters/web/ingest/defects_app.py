"""The defect API on port 8082 (routes and fields of shared/spec/ingest-api.md)."""

from __future__ import annotations

from datetime import datetime, timezone

from klein import Klein
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.storage import defect_store
from ccl.adapters.storage.defect_store import UnknownModel
from ccl.adapters.web.ingest.common import HttpError, RawJSON, endpoint, int_arg, json_reply, read_json
from ccl.domain.ingest.defects import (
    InvalidBatch,
    InvalidDefect,
    validate_batch,
    validate_defect,
    validate_performance,
)
from ccl.domain.metrics import Registry

log = Logger()


class DefectsApp:
    app = Klein()

    def __init__(self, *, db, pool, records, gate, registry: Registry, max_batch: int, status_resource):
        self.db = db
        self.writer = defect_store.SingleWriter(db)
        self.pool = pool
        self.records = records  # thresholds (cached)
        self.gate = gate
        self.max_batch = max_batch
        self._status = status_resource
        self.requests = registry.counter("ingest_defect_requests_total", "Defect API requests by route and status")
        self.stored = registry.counter("ingest_defects_total", "Defects stored, by path (single, batch)")

    def resource(self):
        return self.app.resource()

    @app.route("/health", branch=False)
    def health(self, request):
        return self._status.getChildWithDefault(b"health", request)

    @app.route("/metrics", branch=False)
    def metrics(self, request):
        return self._status.getChildWithDefault(b"metrics", request)

    @app.route("/defect/single", methods=["POST"])
    @endpoint("defect_single")
    async def single(self, request):
        body = read_json(request)
        thresholds = await self.records.thresholds()
        try:
            defect = validate_defect(body, thresholds, now=datetime.now(timezone.utc))
        except InvalidDefect as invalid:
            raise HttpError(422, "invalid defect", invalid.errors) from None
        try:
            row, created = await self.writer.submit(defect)
        except UnknownModel as unknown:
            raise HttpError(422, "invalid defect", [{"field": "model_id", "reason":
                                                     f"no AI model with id {unknown.model_ids[0]}"}]) from None
        if not created:
            return 200, {"success": True, "duplicate": True, "data": RawJSON(row)}
        self.stored.inc(path="single")
        return 201, {"success": True, "data": RawJSON(row)}

    @app.route("/defect/batch", methods=["POST"])
    @endpoint("defect_batch")
    async def batch(self, request):
        thresholds = await self.records.thresholds()
        # A 10,000-item body is megabytes of JSON: parse and check it off the reactor.
        body, defects = await deferToThread(_parse_batch, request, thresholds, self.max_batch)
        try:
            result = await self.pool.run(defect_store.store_batch, defects, body.get("batch_info"))
        except UnknownModel as unknown:
            indexes = [i for i, d in enumerate(defects) if d.model_id in set(unknown.model_ids)]
            raise HttpError(422, "invalid batch", [{"index": i, "errors": [{"field": "model_id", "reason":
                            f"no AI model with id {defects[i].model_id}"}]} for i in indexes[:1000]]) from None
        self.stored.inc(result.stored, path="batch")
        log.info("stored a batch of {stored} defects of coil {coil} ({duplicates} repeated event ids) from {actor}",
                 stored=result.stored, coil=body["coil_number"], duplicates=len(result.duplicates),
                 actor=request.ccl_actor)
        return 201, {"success": True, "data": {"coil_number": body["coil_number"], "received": len(defects),
                                               "stored": result.stored, "duplicate_event_ids": result.duplicates}}

    @app.route("/model/performance", methods=["POST"])
    @endpoint("model_performance")
    async def performance(self, request):
        body = read_json(request)
        try:
            model_id, scores = validate_performance(body)
        except InvalidDefect as invalid:
            raise HttpError(422, "invalid performance data", invalid.errors) from None
        model = await self.pool.run(defect_store.update_performance, model_id, scores)
        if model is None:
            raise HttpError(404, "no such AI model", model_id)
        log.info("model {id} scores updated by {actor}", id=model_id, actor=request.ccl_actor)
        return 200, {"success": True, "data": model}

    @app.route("/model/performance", methods=["GET"])
    @endpoint("model_performance_history")
    async def performance_history(self, request):
        model_id = int_arg(request, "model_id", 0, 1, 2**31 - 1)
        if not model_id:
            raise HttpError(400, "model_id is required")
        limit = int_arg(request, "limit", 100, 1, 1000)
        data = await defect_store.performance_history(self.db, model_id, limit)
        if data is None:
            raise HttpError(404, "no such AI model", model_id)
        return 200, {"success": True, "data": data}

    @app.route("/stats", methods=["GET"])
    @endpoint("stats")
    async def stats(self, request):
        return 200, {"success": True, "data": await defect_store.defect_stats(self.db)}

    @app.route("/defects/recent", methods=["GET"])
    @endpoint("recent")
    async def recent(self, request):
        limit = int_arg(request, "limit", 50, 1, 1000)
        hours = int_arg(request, "hours", 24, 1, 24 * 366)
        rows = await defect_store.recent_defects(self.db, limit=limit, hours=hours)
        return 200, {"success": True, "data": rows, "count": len(rows)}

    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return json_reply(request, 404, {"error": "not found", "details": request.path.decode("latin-1")})

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request, failure):
        return json_reply(request, 405, {"error": "method not allowed", "details": request.method.decode("latin-1")})


def _parse_batch(request, thresholds, maximum: int):
    body = read_json(request)
    if not isinstance(body, dict):
        raise HttpError(400, "a batch must be a JSON object with coil_number and defects")
    info = body.get("batch_info")
    if info is not None and not isinstance(info, dict):
        raise HttpError(422, "invalid batch", [{"field": "batch_info", "reason": "must be a JSON object"}])
    try:
        defects = validate_batch(body.get("defects"), thresholds, now=datetime.now(timezone.utc),
                                 coil_number=body.get("coil_number"), maximum=maximum)
    except InvalidBatch as invalid:
        status = 413 if invalid.kind == "size" else 400 if invalid.kind == "coil_number" else 422
        raise HttpError(status, "invalid batch", invalid.details) from None
    return body, defects

