"""Image files of the image store, by database id only (never by a path from the client).

``/images/<id>`` serves the stored file, ``/images/<id>/thumb`` a small JPEG (the stored
thumbnail, or one made here in a thread and kept in a small in-memory cache), and
``/api/images/<id>`` the image's record with the defects drawn over it in the viewer. A path
from the database that does not resolve to a file below ``[images] root`` is refused.

With two plant servers an image whose file this machine's store lacks and whose row names
another host (``stored_on``) is fetched from that host's ccl-images (``ctx.uses.peer_images``,
by the row's file name): 404 when no peer is configured for the host or it has no such file,
502 when it does not answer usably; every other image is served as before.
"""

from __future__ import annotations

import collections
import io
from pathlib import Path

from twisted.internet import threads
from twisted.logger import Logger
from twisted.web.static import File

from ccl.adapters.image_files import inside
from ccl.adapters.web.errors import HTTPError
from ccl.adapters.web.ui.routing import route
from ccl.ports import ImageNotOnPeer, PeerUnavailable

log = Logger()

THUMB_SIZE = (320, 240)
_CACHE_ENTRIES = 512
_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "bmp": "image/bmp"}


def make_thumbnail(source: Path | bytes) -> bytes:
    """A JPEG of at most THUMB_SIZE from a file or a file's bytes (runs in a thread: Pillow
    decodes for a while)."""
    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        image.draft("RGB", THUMB_SIZE)
        image.thumbnail(THUMB_SIZE)
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=80)
        return out.getvalue()


class _ThumbnailCache:
    def __init__(self, entries: int = _CACHE_ENTRIES):
        self._entries = entries
        self._items: collections.OrderedDict[int, bytes] = collections.OrderedDict()

    def get(self, key: int) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: int, value: bytes) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)


_thumbnails = _ThumbnailCache()


async def _record(ctx, image_id: int) -> dict:
    record = await ctx.uses.coils.image_record(image_id)
    if record is None:
        raise HTTPError(404, "no such image", {"id": image_id})
    return record


async def _from_holder(ctx, image_id: int, record: dict) -> bytes:
    """The file's bytes from the host that holds it, when that is another one; else 404."""
    host = record.get("stored_on")
    peers = ctx.uses.peer_images
    details = {"id": image_id, "purged": bool(record["purged_at"]), "stored_on": host}
    if record["purged_at"] or not host or host == peers.host_name:
        log.warn("image {id}: file {path} missing or outside the image root", id=image_id, path=record["path"])
        raise HTTPError(404, "image file not available", details)
    try:
        return await peers.fetch(host, record["kind"], record["filename"])
    except ImageNotOnPeer as error:
        raise HTTPError(404, "image file not available", {**details, "reason": error.reason}) from None
    except PeerUnavailable as error:
        raise HTTPError(502, "image host unavailable", {**details, "reason": error.reason}) from None


@route("image_file", "/images/<int:image_id>")
async def image_file(ctx, image_id):
    record = await _record(ctx, image_id)
    path = inside(ctx.settings.image_root, record["path"])
    if path is None:
        data = await _from_holder(ctx, image_id, record)
        kind = _TYPES.get(str(record["format"]).lower(), "application/octet-stream")
        ctx.request.setHeader(b"content-type", kind.encode())
        ctx.request.setHeader(b"cache-control", b"private, max-age=86400")
        return data
    ctx.request.setHeader(b"cache-control", b"private, max-age=86400")
    # File streams the file with a producer (no whole image in memory) and answers Range requests.
    resource = File(str(path), defaultType="application/octet-stream")
    resource.type = _TYPES.get(str(record["format"]).lower(), resource.type)
    resource.encoding = None
    return resource


@route("image_thumb", "/images/<int:image_id>/thumb")
async def image_thumb(ctx, image_id):
    data = _thumbnails.get(image_id)
    if data is None:
        record = await _record(ctx, image_id)
        root = ctx.settings.image_root
        stored = inside(root, record["thumbnail_path"])
        if stored is not None:
            data = await threads.deferToThread(stored.read_bytes)
        else:
            source = inside(root, record["path"]) or await _from_holder(ctx, image_id, record)
            try:
                data = await threads.deferToThread(make_thumbnail, source)
            except Exception as error:  # a broken file: say so, keep serving the others
                log.warn("thumbnail of image {id} failed: {error}", id=image_id, error=error)
                raise HTTPError(415, "image cannot be decoded", {"id": image_id}) from None
        _thumbnails.put(image_id, data)
    ctx.request.setHeader(b"content-type", b"image/jpeg")
    ctx.request.setHeader(b"cache-control", b"private, max-age=86400")
    return data


@route("image_info", "/api/images/<int:image_id>")
async def image_info(ctx, image_id):
    record = await _record(ctx, image_id)
    record.pop("path", None)
    record.pop("thumbnail_path", None)
    record["partner"] = await ctx.uses.coils.image_partner(image_id)
    record["defects"] = await ctx.uses.coils.image_defects(image_id)
    return record
