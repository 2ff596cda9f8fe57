"""Start the ingestion apps in-process on a free loopback port, with a fresh database and a temp image root."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import psycopg2
import treq
from PIL import Image
from twisted.internet import defer, reactor, task
from twisted.web.client import HTTPConnectionPool

from ccl.config import load_config
from ccl.services import defects, images
from ccl.services.ingest_settings import DefectsSettings, ImagesSettings
from tests.support.database import fresh_database
from tests.support.waiting import wait_for  # noqa: F401 (imported from here by tests)


class Running:
    def __init__(self, url, dsn, root, app, db, pool, jobs, site):
        self.url, self.dsn, self.root, self.app, self.db, self.pool, self.jobs, self.site = (
            url, dsn, root, app, db, pool, jobs, site)

    def files(self, *folders) -> list[str]:
        """Every file under the given folders of the image root (all folders by default)."""
        found = []
        for folder in folders or ("original", "labeled", "temp", "thumbnails"):
            base = Path(self.root, folder)
            if base.exists():
                found += sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())
        return found


@defer.inlineCallbacks
def start_service(testcase, kind: str, *, allow: str = "127.0.0.1", root: str | None = None, dsn: str | None = None,
                  env: dict | None = None):
    dsn = dsn or fresh_database(testcase)
    root = root or os.path.abspath(testcase.mktemp())
    environ = {"CCL_DATABASE_DSN": dsn, "CCL_IMAGES_ROOT": root, "CCL_INGEST_ALLOW": allow,
               "CCL_DATABASE_POOL_SIZE": "2", **(env or {})}
    config = load_config(environ)
    if kind == "images":
        built = images.build(config, ImagesSettings.from_config(config))
    else:
        built = defects.build(config, DefectsSettings.from_config(config))
    db, pool, site, app, jobs = built.db, built.pool, built.site, built.app, built.jobs
    pool.start()
    testcase.addCleanup(pool.stop)
    testcase.addCleanup(db.close)
    yield db.start()
    if kind == "images":
        # Registered last, so it runs first: background thumbnails finish before the database closes.
        testcase.addCleanup(app.thumbnailer.idle)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    url = f"http://127.0.0.1:{port.getHost().port}"
    _use_pool(testcase)
    return Running(url, dsn, root, app, db, pool, jobs, site)


_pool = None


def _use_pool(testcase):
    """One client connection pool per test, closed (server side too) before the reactor check."""
    global _pool
    if _pool is None:
        _pool = HTTPConnectionPool(reactor, persistent=True)

        @defer.inlineCallbacks
        def close():
            global _pool
            pool, _pool = _pool, None
            yield pool.closeCachedConnections()
            yield task.deferLater(reactor, 0.05, lambda: None)

        testcase.addCleanup(close)


def image_bytes(fmt: str = "JPEG", size=(64, 48), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 7):  # some detail, so that JPEGs are not trivially small
        image.putpixel((x, (x * 3) % size[1]), (0, 0, 0))
    image.save(buffer, fmt)
    return buffer.getvalue()


def multipart(parts, boundary: str | None = None) -> tuple[bytes, str]:
    """``parts``: (name, filename or None, content type or None, bytes) in the order given."""
    boundary = boundary or uuid.uuid4().hex
    chunks = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks += [head.encode(), b"\r\n", data if isinstance(data, bytes) else data.encode(), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def pair_parts(coil="C123-45", original=None, labeled=None, **texts):
    parts = [("original_image", "a.jpg", "image/jpeg", original if original is not None else image_bytes("JPEG")),
             ("labeled_image", "b.png", "image/png", labeled if labeled is not None else image_bytes("PNG"))]
    if coil is not None:
        parts.append(("coil_number", None, None, coil))
    for name, value in texts.items():
        parts.append((name, None, None, value))
    return parts


@defer.inlineCallbacks
def post_parts(url, parts, headers=None):
    body, content_type = multipart(parts)
    response = yield treq.post(url + "/upload/pair", data=body, pool=_pool,
                               headers={"Content-Type": content_type, **(headers or {})})
    content = yield response.content()
    return response.code, _json(content)


@defer.inlineCallbacks
def post_json(url, path, payload, headers=None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    response = yield treq.post(url + path, data=body, pool=_pool, headers={"Content-Type": "application/json", **(headers or {})})
    content = yield response.content()
    return response.code, _json(content)


@defer.inlineCallbacks
def get(url, path, headers=None):
    response = yield treq.get(url + path, headers=headers or {}, pool=_pool)
    content = yield response.content()
    return response.code, _json(content), content, response


def _json(content: bytes):
    try:
        return json.loads(content)
    except ValueError:
        return None


@defer.inlineCallbacks
def stats_asked_together(testcase, svc, table: str, count: int):
    """``count`` GET /stats sent while ``table`` is locked by another session, so that the first
    read stays under way until all of them have arrived; fires with their answers."""
    holder = psycopg2.connect(svc.dsn)
    testcase.addCleanup(holder.close)
    holder.cursor().execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    asked = [get(svc.url, "/stats") for _ in range(count)]
    yield wait_for(lambda: svc.app.read_stats.waiting == count, what=f"{count} /stats requests waiting")
    holder.rollback()
    answers = yield defer.gatherResults(asked)
    return answers
