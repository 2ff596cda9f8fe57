"""Client of the orchestrator's control API, as the 시스템 page uses it.

The API (``GET /status`` with the host figures under ``host``, ``GET /status/{id}``, ``POST /start|stop|restart/{id}``,
``GET /logs/{id}?lines=N``, ``GET /logs/{id}?follow=1`` as Server-Sent Events) needs
``Authorization: Bearer <token>`` for POSTs; the token is read from
``<[paths] var>/orchestrator.token`` at each call, because the orchestrator may create it
after the UI started. ``X-CCL-Actor`` names the UI user, so the orchestrator's audit row
says who pressed the button. Any failure to reach it raises :class:`OrchestratorUnavailable`
with a readable reason; the page shows it instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import treq
from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from ccl.adapters.tls import https_policy

log = Logger()

ACTIONS = ("start", "stop", "restart")
ACTION_TIMEOUT = 120.0


class OrchestratorUnavailable(Exception):
    """The orchestrator did not answer usefully; str() says why."""


class OrchestratorRefused(Exception):
    """The orchestrator answered with an error status; carries its code and JSON body."""

    def __init__(self, code: int, body):
        super().__init__(f"orchestrator answered {code}")
        self.code = code
        self.body = body


class OrchestratorClient:
    def __init__(self, reactor, base_url: str, token_path: Path, timeout: float = 5.0, ca_file: str | None = None):
        """An https ``base_url`` is verified against ``ca_file`` (None: the system's trust store)."""
        self._reactor = reactor
        self.base_url = base_url.rstrip("/")
        self._token_path = token_path
        self._timeout = timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = treq.client.HTTPClient(Agent(reactor, contextFactory=https_policy(ca_file), pool=self._pool))

    def close(self) -> defer.Deferred:
        return self._pool.closeCachedConnections()

    def _headers(self, actor: str | None) -> dict[bytes, list[bytes]]:
        headers = {b"accept": [b"application/json"]}
        try:
            token = self._token_path.read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if token:
            headers[b"authorization"] = [b"Bearer " + token.encode("ascii", errors="ignore")]
        if actor:
            headers[b"x-ccl-actor"] = [actor.encode("utf-8")]
        return headers

    async def _call(self, method: str, path: str, actor: str | None, timeout: float | None = None):
        url = self.base_url + path
        try:
            response = await self._http.request(method, url, headers=self._headers(actor),
                                                timeout=timeout or self._timeout)
            body = await response.content()
        except Exception as error:  # connection refused, timeout, DNS: all mean "not reachable"
            reason = str(error).strip() or type(error).__name__
            raise OrchestratorUnavailable(f"{self.base_url}: {reason}") from None
        try:
            value = json.loads(body) if body else {}
        except ValueError:
            raise OrchestratorUnavailable(f"{self.base_url}: answer is not JSON (HTTP {response.code})") from None
        if response.code >= 400:
            raise OrchestratorRefused(response.code, value)
        return value

    async def services(self) -> list[dict]:
        return (await self.overview())["services"]

    async def overview(self) -> dict:
        """One ``GET /status``: the services (normalised) and the host figures (None if absent)."""
        value = await self._call("GET", "/status", None)
        host = value.get("host") if isinstance(value, dict) else None
        return {"services": normalise_status(value), "host": host if isinstance(host, dict) else None}

    async def action(self, action: str, service_id: str, actor: str):
        if action not in ACTIONS:
            raise ValueError(action)
        # A stop waits for the child to end (TERM, then KILL after the grace period): allow for it.
        return await self._call("POST", f"/{action}/{quote(service_id, safe='')}", actor, timeout=ACTION_TIMEOUT)

    async def logs(self, service_id: str, lines: int, actor: str | None = None) -> list[str]:
        value = await self._call("GET", f"/logs/{quote(service_id, safe='')}?lines={lines}", actor)
        if isinstance(value, dict):
            value = value.get("lines", [])
        return [str(line) for line in value] if isinstance(value, list) else []

    async def follow(self, service_id: str, write, actor: str | None = None):
        """Stream ``/logs/{id}?follow=1`` to ``write(bytes)``; the returned Deferred is cancellable."""
        url = f"{self.base_url}/logs/{quote(service_id, safe='')}?follow=1"
        headers = self._headers(actor)
        headers[b"accept"] = [b"text/event-stream"]
        try:
            # unbuffered: treq would otherwise keep every chunk of an endless stream in memory.
            response = await self._http.request("GET", url, headers=headers, timeout=self._timeout, unbuffered=True)
        except Exception as error:
            raise OrchestratorUnavailable(f"{self.base_url}: {str(error).strip() or type(error).__name__}") from None
        if response.code >= 400:
            body = await response.content()
            raise OrchestratorRefused(response.code, body.decode("utf-8", errors="replace"))
        relay = _Relay(write)
        finished = defer.Deferred(canceller=lambda _: relay.stop())
        relay.finished = finished
        response.deliverBody(relay)
        await finished


class _Relay(protocol.Protocol):
    """Hands each chunk of the body on; cancelling stops the download (closes the connection)."""

    finished: defer.Deferred

    def __init__(self, write):
        self._write = write

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (twisted's name)
        self._write(data)

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason=protocol.connectionDone) -> None:  # noqa: N802
        if not self.finished.called:
            self.finished.callback(None)


def normalise_status(value) -> list[dict]:
    """Accept ``{"services": [...]}``, a list, or ``{id: {...}}``; each entry gets an ``id``; sorted by it."""
    if isinstance(value, dict) and isinstance(value.get("services"), (list, dict)):
        value = value["services"]
    if isinstance(value, dict):
        value = [dict(entry, id=entry.get("id", key)) for key, entry in value.items() if isinstance(entry, dict)]
    if not isinstance(value, list):
        return []
    services = []
    for entry in value:
        if isinstance(entry, dict) and (entry.get("id") or entry.get("service")):
            services.append(dict(entry, id=str(entry.get("id") or entry.get("service"))))
    return sorted(services, key=lambda e: e["id"])
