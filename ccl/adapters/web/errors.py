"""The web layer's one error type: raise :class:`HTTPError` from any handler of any app.

Every web app (the UI, the ingest services) answers it in one place of its own request
wrapper: JSON endpoints with :meth:`HTTPError.body` (``{"error": ..., "details": ...}``,
the shape of docs/ingest-api.md), the UI's HTML pages with their error page. ``error`` is a
short stable English text a client may compare; ``details`` says more (any JSON value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class HTTPError(Exception):
    """Answer ``status`` with ``error`` (and ``details``, and extra response ``headers``)."""

    def __init__(self, status: int, error: str, details: Any = None,
                 headers: Mapping[bytes, bytes] | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"error": ..., "details": ...}``, ``details`` left out when None."""
        return error_body(self.error, self.details)


def error_body(error: str, details: Any = None) -> dict[str, Any]:
    """The one JSON shape of an error answer (for errors not raised as HTTPError: 404, 503, 500)."""
    body: dict[str, Any] = {"error": error}
    if details is not None:
        body["details"] = details
    return body
