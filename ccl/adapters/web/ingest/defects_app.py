"""The defect API on port 8082 (routes and fields of docs/ingest-api.md)."""

from __future__ import annotations

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ingest.common import (
    RawJSON,
    client_host,
    endpoint,
    int_arg,
    json_content,
    json_reply,
    parse_json,
    read_json,
)
from ccl.adapters.web.ingest.hot_routes import HotRoutes
from ccl.adapters.web.ingest.shared_read import SharedRead
from ccl.application.defects import DefectIngestion
from ccl.application.heartbeats import HeartbeatConflict, HeartbeatReceiver
from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.defects import InvalidBatch, InvalidDefect, storable_json, validate_batch
from ccl.domain.ingest.defects_fast import defect_row, fast_batch_rows
from ccl.domain.ingest.heartbeats import InvalidHeartbeat
from ccl.domain.metrics import Registry
from ccl.ports import IDefectRecords, StoredHeartbeat, UnknownModel

log = Logger()


class DefectsApp:
    """The routes of ccl-defects, bound to this instance (its own Klein app)."""

    def __init__(self, *, records: IDefectRecords, ingestion: DefectIngestion, heartbeats: HeartbeatReceiver, gate,
                 registry: Registry, max_batch: int, status_resource):
        self.records = records
        self.ingestion = ingestion
        self.heartbeats = heartbeats
        self.gate = gate
        self.max_batch = max_batch
        self._status = status_resource
        self.requests = registry.counter("ingest_defect_requests_total", "Defect API requests by route and status")
        self.stored = registry.counter("ingest_defects_total", "Defects stored, by path (single, batch)")
        self.heartbeats_stored = registry.counter("ingest_heartbeats_total", "Inspection heartbeats stored")
        self.read_stats = SharedRead(records.stats)
        self.app = app = Klein()
        app.route("/health", branch=False)(self.health)
        app.route("/metrics", branch=False)(self.metrics)
        app.route("/defect/single", methods=["POST"])(self.single)
        app.route("/defect/batch", methods=["POST"])(self.batch)
        app.route("/model/performance", methods=["POST"])(self.performance)
        app.route("/model/performance", methods=["GET"])(self.performance_history)
        app.route("/inspection/heartbeat", methods=["POST"])(self.heartbeat)
        app.route("/stats", methods=["GET"])(self.stats)
        app.route("/defects/recent", methods=["GET"])(self.recent)
        app.handle_errors(NotFound)(self.not_found)
        app.handle_errors(MethodNotAllowed)(self.not_allowed)

    def resource(self):
        hot = {b"/defect/single": self.single, b"/defect/batch": self.batch}
        return HotRoutes(hot, self.app.resource())

    def health(self, request):
        return self._status.getChildWithDefault(b"health", request)

    def metrics(self, request):
        return self._status.getChildWithDefault(b"metrics", request)

    @endpoint("defect_single")
    async def single(self, request):
        body = read_json(request)
        try:
            row, created = await self.ingestion.single(body, address=client_host(request))
        except InvalidDefect as invalid:
            raise HTTPError(422, "invalid defect", invalid.errors) from None
        except UnknownModel as unknown:
            raise HTTPError(422, "invalid defect", [{"field": "model_id", "reason":
                                                     f"no AI model with id {unknown.model_ids[0]}"}]) from None
        if not created:
            return 200, {"success": True, "duplicate": True, "data": RawJSON(row)}
        self.stored.inc(path="single")
        return 201, {"success": True, "data": RawJSON(row)}

    @endpoint("defect_batch")
    async def batch(self, request):
        content = json_content(request)
        made = {}

        def prepare(thresholds, now):
            # A 10,000-item body is megabytes of JSON: read, parsed and checked off the
            # reactor, on the store's thread, in the same trip as storing it.
            body, rows = _parse_batch(content.read(), thresholds, now, self.max_batch)
            made["rows"] = rows
            return body, rows, body.get("batch_info")

        try:
            body, rows, result = await self.ingestion.batch(prepare, address=client_host(request))
        except UnknownModel as unknown:
            raise _unknown_models(unknown, made["rows"]) from None
        self.stored.inc(result.stored, path="batch")
        log.info("stored a batch of {stored} defects of coil {coil} ({duplicates} repeated event ids) from {actor}",
                 stored=result.stored, coil=body["coil_number"], duplicates=len(result.duplicates),
                 actor=request.ccl_actor)
        return 201, {"success": True, "data": {"coil_number": body["coil_number"], "received": len(rows),
                                               "stored": result.stored, "duplicate_event_ids": result.duplicates}}

    @endpoint("model_performance")
    async def performance(self, request):
        body = read_json(request)
        try:
            model_id, model = await self.ingestion.update_performance(body)
        except InvalidDefect as invalid:
            raise HTTPError(422, "invalid performance data", invalid.errors) from None
        if model is None:
            raise HTTPError(404, "no such AI model", model_id)
        log.info("model {id} scores updated by {actor}", id=model_id, actor=request.ccl_actor)
        return 200, {"success": True, "data": model}

    @endpoint("model_performance_history")
    async def performance_history(self, request):
        model_id = int_arg(request, "model_id", 0, 1, 2**31 - 1)
        if not model_id:
            raise HTTPError(400, "model_id is required")
        limit = int_arg(request, "limit", 100, 1, 1000)
        data = await self.records.performance_history(model_id, limit)
        if data is None:
            raise HTTPError(404, "no such AI model", model_id)
        return 200, {"success": True, "data": data}

    @endpoint("inspection_heartbeat")
    async def heartbeat(self, request):
        body = read_json(request)
        try:
            stored, created = await self.heartbeats.receive(body, address=client_host(request))
        except InvalidHeartbeat as invalid:
            raise HTTPError(422, "invalid heartbeat", invalid.errors) from None
        except HeartbeatConflict as conflict:
            raise HTTPError(409, "a different heartbeat of this camera and period is stored",
                            {"stored": _heartbeat_json(conflict.stored)}) from None
        if not created:
            return 200, {"success": True, "duplicate": True, "data": _heartbeat_json(stored)}
        self.heartbeats_stored.inc()
        return 201, {"success": True, "data": _heartbeat_json(stored)}

    @endpoint("stats")
    async def stats(self, request):
        return 200, {"success": True, "data": await self.read_stats()}

    @endpoint("recent")
    async def recent(self, request):
        limit = int_arg(request, "limit", 50, 1, 1000)
        hours = int_arg(request, "hours", 24, 1, 24 * 366)
        rows = await self.records.recent(limit, hours)
        return 200, {"success": True, "data": rows, "count": len(rows)}

    def not_found(self, request, failure):
        return json_reply(request, 404, {"error": "not found", "details": request.path.decode("latin-1")})

    def not_allowed(self, request, failure):
        return json_reply(request, 405, {"error": "method not allowed", "details": request.method.decode("latin-1")})


def _heartbeat_json(stored: StoredHeartbeat) -> dict:
    beat = stored.heartbeat
    return {"id": stored.id, "camera_id": beat.camera_id, "box_id": beat.box_id,
            "period_start": beat.period_start.isoformat(), "period_end": beat.period_end.isoformat(),
            "frames_inspected": beat.frames_inspected, "frames_expected": beat.frames_expected,
            "received_at": stored.received_at.isoformat()}


def _unknown_models(unknown: UnknownModel, rows) -> HTTPError:
    """The 422 of a batch naming models that do not exist: the items that name them."""
    missing = set(unknown.model_ids)
    indexes = [i for i, row in enumerate(rows) if row.model_id in missing]
    return HTTPError(422, "invalid batch", [{"index": i, "errors": [{"field": "model_id", "reason":
                     f"no AI model with id {rows[i].model_id}"}]} for i in indexes[:1000]])


def _parse_batch(raw: bytes, thresholds, now, maximum: int):
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise HTTPError(400, "a batch must be a JSON object with coil_number and defects")
    info = body.get("batch_info")
    if info is not None and not isinstance(info, dict):
        raise HTTPError(422, "invalid batch", [{"field": "batch_info", "reason": "must be a JSON object"}])
    if info is not None and not storable_json(info):
        raise HTTPError(422, "invalid batch", [{"field": "batch_info", "reason": "contains a NUL character or an "
                                                "unpaired surrogate, which cannot be stored"}])
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
            raise HTTPError(status, "invalid batch", invalid.details) from None
        rows = [defect_row(d) for d in defects]
    return body, rows
