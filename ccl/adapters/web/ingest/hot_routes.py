"""The site root of an ingestion service: its busiest POST routes go straight to their handler.

At 1,000 defect posts a second, Klein's per-request work (a Werkzeug URL map bound and
matched, prepath fix-ups, two notifyFinish Deferreds, renderable checks) was a fifth of the
service's CPU. The hot routes are exact paths with one method, so a dictionary look-up finds
them; everything else (other routes, other methods, 404/405 answers) goes to the Klein
resource unchanged. The handlers are the same ``endpoint``-wrapped methods Klein calls, so
authentication, validation, error JSON and metrics are identical on both paths.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

log = Logger()

#: ``handler(request)`` -> Deferred firing with the reply body (bytes; status and headers set).
Handler = Callable[[server.Request], defer.Deferred]


class HotRoutes(resource.Resource):
    isLeaf = True

    def __init__(self, routes: dict[bytes, Handler], fallback: resource.Resource):
        super().__init__()
        self._routes = routes
        self._fallback = fallback

    def render(self, request):
        handler = self._routes.get(request.path) if request.method == b"POST" else None
        if handler is None:
            return self._fallback.render(request)
        gone = []
        request.notifyFinish().addErrback(gone.append)
        result = handler(request)
        result.addCallback(_write, request, gone)
        result.addErrback(_failed, request, gone)
        return server.NOT_DONE_YET


def _write(body: bytes, request, gone: list) -> None:
    if gone:
        return  # the client went away; what the handler stored stays stored
    request.write(body)
    request.finish()


def _failed(failure, request, gone: list) -> None:
    # ``endpoint`` answers every failure itself; this is a bug in the answering.
    log.failure("answering {path} failed", failure, path=request.path)
    if not gone:
        request.processingFailed(failure)
