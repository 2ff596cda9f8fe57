"""The image-pair API on port 8081 (routes and fields of docs/ingest-api.md)."""

from __future__ import annotations

from datetime import datetime

from klein import Klein
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web import static
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ingest.common import client_host, endpoint, int_arg, json_reply, text_arg
from ccl.adapters.web.ingest.hot_routes import HotRoutes
from ccl.adapters.web.ingest.multipart_form import read_form
from ccl.adapters.web.ingest.shared_read import SharedRead
from ccl.application.image_pairs import PairIngestion, ReceivedFile
from ccl.domain.ingest.coils import InvalidCoilNumber, check_coil_number
from ccl.domain.ingest.images import CONTENT_TYPES, KINDS, is_stored_name
from ccl.domain.ingest.times import parse_timestamp
from ccl.domain.ingest.uploads import InvalidUpload
from ccl.domain.metrics import Registry
from ccl.ports import IImageFolder, IImageRecords, ImageRefused, IThumbnails

log = Logger()


class ImagesApp:
    """The routes of ccl-images, bound to this instance (its own Klein app)."""

    def __init__(self, *, records: IImageRecords, store: IImageFolder, ingestion: PairIngestion,
                 thumbnailer: IThumbnails, gate, registry: Registry, max_file_bytes: int, status_resource):
        self.records = records
        self.thumbnailer = thumbnailer
        self.store = store
        self.ingestion = ingestion
        self.gate = gate
        self.max_file_bytes = max_file_bytes
        self._status = status_resource
        self.requests = registry.counter("ingest_image_requests_total", "Image API requests by route and status")
        self.pairs = registry.counter("ingest_image_pairs_total", "Image pairs stored")
        self.bytes_in = registry.counter("ingest_image_bytes_total", "Bytes of image files stored")
        self.read_stats = SharedRead(records.stats)
        self.app = app = Klein()
        app.route("/health", branch=False)(self.health)
        app.route("/metrics", branch=False)(self.metrics)
        app.route("/upload/pair", methods=["POST"])(self.upload_pair)
        app.route("/latest/<kind>", methods=["GET"])(self.latest)
        app.route("/list/<kind>", methods=["GET"])(self.list_images)
        app.route("/image/<kind>/<path:filename>", methods=["GET"])(self.image)
        app.route("/stats", methods=["GET"])(self.stats)
        app.handle_errors(NotFound)(self.not_found)
        app.handle_errors(MethodNotAllowed)(self.not_allowed)

    def resource(self):
        return HotRoutes({b"/upload/pair": self.upload_pair}, self.app.resource())

    def health(self, request):
        return self._status.getChildWithDefault(b"health", request)

    def metrics(self, request):
        return self._status.getChildWithDefault(b"metrics", request)

    @endpoint("upload_pair")
    async def upload_pair(self, request):
        # Thumbnails wait while uploads are in flight (the line first, derived data later).
        self.thumbnailer.upload_started()
        try:
            return await self._upload_pair(request)
        finally:
            self.thumbnailer.upload_finished()

    async def _upload_pair(self, request):
        length = int(request.getHeader(b"content-length") or -1)
        content_type = request.getHeader(b"content-type")
        # Refused (HTTPError) with nothing left under temp/ by read_form itself.
        form = await deferToThread(read_form, request.content, content_type and content_type.decode("latin-1"),
                                   length, self.store, max_file_bytes=self.max_file_bytes, max_files=2)
        try:
            received = [ReceivedFile(p.field, p.temp.path, p.temp.size, p.temp.sha256) for p in form.files]
            reply = await self.ingestion.ingest(form.texts, received, address=client_host(request))
        except BaseException as error:
            # Nothing of a refused request stays under temp/ (a stored one's temp names are gone).
            await deferToThread(self.store.discard, form.temp_paths())
            if isinstance(error, InvalidUpload):
                raise HTTPError(error.status, error.error, error.details) from None
            if isinstance(error, ImageRefused):
                raise HTTPError(error.status, error.reason) from None
            raise
        self.pairs.inc()
        self.bytes_in.inc(reply["original_image"]["size"] + reply["labeled_image"]["size"])
        log.info("stored pair {original} + {labeled} of coil {coil} ({defects} defects) from {actor}",
                 original=reply["original_image"]["filename"], labeled=reply["labeled_image"]["filename"],
                 coil=reply["coil_number"], defects=reply["defects_recorded"], actor=request.ccl_actor)
        return 201, {"success": True, "data": reply}

    @endpoint("latest")
    async def latest(self, request, kind):
        kind = _kind(kind)
        coil = _coil_arg(request)
        row = await self.records.latest(kind, coil)
        return 200, {"success": True, "data": _with_url(row)}

    @endpoint("list")
    async def list_images(self, request, kind):
        kind = _kind(kind)
        page = int_arg(request, "page", 1, 1, 1_000_000)
        limit = int_arg(request, "limit", 50, 1, 200)
        since, until = _date_arg(request, "from_date"), _date_arg(request, "to_date")
        total, rows = await self.records.page(kind, page=page, limit=limit, coil_number=_coil_arg(request),
                                              since=since, until=until)
        return 200, {"success": True, "data": {"images": [_with_url(r) for r in rows], "total": total,
                                               "page": page, "limit": limit, "pages": -(-total // limit)}}

    @endpoint("image")
    async def image(self, request, kind, filename):
        kind = _kind(kind)
        # Only names this service makes: no separator, no '..', nothing outside the folder.
        if not is_stored_name(kind, filename):
            raise HTTPError(400, "not an image file name", "expected <coil>_<YYYYMMDDHHMMSSfff>_<type>.<jpg|png|bmp>")
        path = self.store.path_of(kind, filename)
        if not path.is_file():
            raise HTTPError(404, "no such image", filename)
        ext = filename.rsplit(".", 1)[1]
        resource = static.File(str(path), defaultType=CONTENT_TYPES[ext])
        resource.isLeaf = True
        return resource

    @endpoint("stats")
    async def stats(self, request):
        data = dict(await self.read_stats())  # shared with concurrent requests: add to a copy
        usage = await deferToThread(self.store.disk_usage)
        data["disk"] = {"total_bytes": usage.total, "used_bytes": usage.used, "free_bytes": usage.free,
                        "used_percent": round(100.0 * usage.used / usage.total, 2) if usage.total else None}
        return 200, {"success": True, "data": data}

    def not_found(self, request, failure):
        return json_reply(request, 404, {"error": "not found", "details": request.path.decode("latin-1")})

    def not_allowed(self, request, failure):
        return json_reply(request, 405, {"error": "method not allowed", "details": request.method.decode("latin-1")})


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise HTTPError(404, "unknown image type", f"type must be one of {', '.join(KINDS)}")
    return kind


def _coil_arg(request) -> str | None:
    coil = text_arg(request, "coil_number")
    if coil is None:
        return None
    try:
        return check_coil_number(coil)
    except InvalidCoilNumber as error:
        raise HTTPError(400, "invalid coil_number", str(error)) from None


def _date_arg(request, name: str) -> datetime | None:
    text = text_arg(request, name)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as error:
        raise HTTPError(400, f"invalid {name}", str(error)) from None


def _with_url(row: dict | None) -> dict | None:
    if row is not None:
        row["url"] = f"/image/{row['kind']}/{row['filename']}"
    return row
