"""``GET /health`` (JSON) and ``GET /metrics`` (Prometheus text) for a service.

A service passes its metrics registry and a function returning its health as a dict with
at least ``"status": "ok" | "degraded" | "down"``; "down" answers 503 so that a plain HTTP
check (the orchestrator's) sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.web import resource

from ccl.adapters.web.errors import error_body
from ccl.domain.metrics import Registry


class _Health(resource.Resource):
    isLeaf = True

    def __init__(self, health: Callable[[], dict]):
        super().__init__()
        self._health = health

    def render_GET(self, request):  # noqa: N802 (twisted.web's name)
        body = self._health()
        request.setResponseCode(503 if body.get("status") == "down" else 200)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


class _Metrics(resource.Resource):
    isLeaf = True

    def __init__(self, registry: Registry):
        super().__init__()
        self._registry = registry

    def render_GET(self, request):  # noqa: N802
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self._registry.render().encode("utf-8")


class _NotFound(resource.Resource):
    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(error_body("not found", request.path.decode("latin-1"))).encode()


def status_resource(registry: Registry, health: Callable[[], dict]) -> resource.Resource:
    root = resource.Resource()
    root.putChild(b"health", _Health(health))
    root.putChild(b"metrics", _Metrics(registry))
    root.noLongerChildren = True
    root.getChild = lambda path, request: _NotFound()  # type: ignore[method-assign]
    return root
