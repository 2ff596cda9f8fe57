"""The defect API on port 8082 (routes and fields of shared/spec/ingest-api.md)."""

from __future__ import annotations

from datetime import datetime, timezone

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.storage import defect_store
from ccl.adapters.storage.defect_store import UnknownModel
from ccl.adapters.web.ingest.common import (
    HttpError,
    RawJSON,
    endpoint,
    int_arg,
    json_content,
    json_reply,
    parse_json,
    read_json,
)
from ccl.adapters.web.ingest.hot_routes import HotRoutes
from ccl.adapters.web.ingest.shared_read import SharedRead
from ccl.domain.ingest.defects import (
    InvalidBatch,
    InvalidDefect,
    storable_json,
    validate_batch,
    validate_defect,
    validate_performance,
)
from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.defects_fast import defect_row, fast_batch_rows
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
        self.read_stats = SharedRead(lambda: defect_store.defect_stats(self.db))

    def resource(self):
        hot = {b"/defect/single": self.single, b"/defect/batch": self.batch}
        return HotRoutes(hot, self.app.resource())

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
        content = json_content(request)
        # A 10,000-item body is megabytes of JSON: parse, check and store it off the reactor,
        # all in one trip to the pool thread.
        body, stored, duplicates, received = await self.pool.run(_batch_work, content, thresholds, self.max_batch)
        self.stored.inc(stored, path="batch")
        log.info("stored a batch of {stored} defects of coil {coil} ({duplicates} repeated event ids) from {actor}",
                 stored=stored, coil=body["coil_number"], duplicates=len(duplicates), actor=request.ccl_actor)
        return 201, {"success": True, "data": {"coil_number": body["coil_number"], "received": received,
                                               "stored": stored, "duplicate_event_ids": duplicates}}

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
        return 200, {"success": True, "data": await self.read_stats()}

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


def _batch_work(connection, content, thresholds, maximum: int):
    """Read, parse, check and store a batch (on a SyncPool thread, in its transaction)."""
    body, rows = _parse_batch(content.read(), thresholds, maximum)
    try:
        result = defect_store.store_batch(connection, rows, body.get("batch_info"))
    except UnknownModel as unknown:
        missing = set(unknown.model_ids)
        indexes = [i for i, r in enumerate(rows) if r[defect_store.ROW_MODEL] in missing]
        raise HttpError(422, "invalid batch", [{"index": i, "errors": [{"field": "model_id", "reason":
                        f"no AI model with id {rows[i][defect_store.ROW_MODEL]}"}]} for i in indexes[:1000]]) from None
    return body, result.stored, result.duplicates, len(rows)


def _parse_batch(raw: bytes, thresholds, maximum: int):
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise HttpError(400, "a batch must be a JSON object with coil_number and defects")
    info = body.get("batch_info")
    if info is not None and not isinstance(info, dict):
        raise HttpError(422, "invalid batch", [{"field": "batch_info", "reason": "must be a JSON object"}])
    if info is not None and not storable_json(info):
        raise HttpError(422, "invalid batch", [{"field": "batch_info", "reason": "contains a NUL character or an "
                                                "unpaired surrogate, which cannot be stored"}])
    now = datetime.now(timezone.utc)
    coil, items = body.get("coil_number"), body.get("defects")
    # The fast lane takes plainly valid batches; anything else gets the rule-by-rule check,
    # which normalises or explains.
    try:
        rows = fast_batch_rows(items, thresholds, now=now, coil_number=check_coil_number(coil), maximum=maximum)
    except InvalidCoilNumber:
        rows = None
    if rows is None:
        try:
            defects = validate_batch(items, thresholds, now=now, coil_number=coil, maximum=maximum)
        except InvalidBatch as invalid:
            status = 413 if invalid.kind == "size" else 400 if invalid.kind == "coil_number" else 422
            raise HttpError(status, "invalid batch", invalid.details) from None
        rows = [defect_row(d) for d in defects]
    return body, rows
