"""What both ingestion apps share: body limits, JSON replies, authentication, error mapping."""

from __future__ import annotations

import functools
import inspect
import io
import ipaddress
import json
from collections.abc import Sequence

import orjson
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server

from ccl.adapters.web.errors import HTTPError
from ccl.domain.ingest.tokens import bearer_token, token_digest
from ccl.ports import IIngestTokens, StorageUnavailable, StoreUnavailable

log = Logger()


#: Request bodies up to this size are kept in memory, larger ones in a temp file.
IN_MEMORY = 2 * 1024 * 1024


def ingest_site(resource, max_body: int, on_refused=None) -> server.Site:
    """A Site whose requests are size-limited and whose bodies Twisted does not parse itself:
    by default it parses every multipart body with the email package on the reactor thread
    (half the CPU of an upload, all of it blocking). We parse it streaming, in a thread."""
    return _QuietSite(resource, requestFactory=limited_request(max_body, on_refused), parsePOSTFormSubmission=False)


class _QuietSite(server.Site):
    """No access-log line per request: a Jetson posting 1,000 defects a second would fill the
    log with them (and cost a tenth of the CPU). Requests are counted in /metrics by route and
    status; refusals and failures are logged by ``endpoint``."""

    def log(self, request):
        pass


def limited_request(max_body: int, on_refused=None) -> type:
    """A Request class refusing bodies over ``max_body`` bytes: from Content-Length before any
    byte of the body is read, and while streaming (chunked bodies, lying Content-Length)."""

    class LimitedRequest(server.Request):
        _refused = False
        _received = 0
        _discarded = 0

        def gotLength(self, length):  # noqa: N802 (twisted's name)
            if length is not None and length > max_body:
                self._refuse(f"Content-Length {length} is over the limit of {max_body} bytes")
                return
            if length is not None and length <= IN_MEMORY:
                # A typical image pair (under a megabyte) stays in memory: no temp file to
                # write and read back. Larger bodies spool to a temp file, as Twisted does.
                self.content = io.BytesIO()
                return
            super().gotLength(length)

        def handleContentChunk(self, data):  # noqa: N802
            if self._refused:
                # Read and drop the rest so the client sees our answer; give up on a flood.
                self._discarded += len(data)
                if self._discarded > 2 * max_body + 1024 * 1024:
                    self.channel.transport.abortConnection()
                return
            self._received += len(data)
            if self._received > max_body:
                self.content.close()
                self._refuse(f"the body is over the limit of {max_body} bytes")
                return
            super().handleContentChunk(data)

        def _refuse(self, details: str) -> None:
            self._refused = True
            self.content = io.BytesIO()
            body = json.dumps({"error": "request too large", "details": details}).encode()
            self.channel.transport.write(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            if on_refused is not None:
                on_refused()

        def requestReceived(self, command, path, version):  # noqa: N802
            if self._refused:
                self.channel.transport.loseConnection()
                return
            super().requestReceived(command, path, version)

    return LimitedRequest


class Gate:
    """Who may use the API: a client address on ``[ingest] allow`` or a valid bearer token.

    Token look-ups are cached for a few seconds so that a busy Jetson costs no query per
    request; a revoked token is refused at the latest after ``cache_seconds``.
    """

    def __init__(self, tokens: IIngestTokens, networks: Sequence, clock, cache_seconds: float = 10.0):
        self._tokens = tokens
        self._networks = list(networks)
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._addresses: dict[str, bool] = {}

    def _address_allowed(self, host: str) -> bool:
        # Decided once per client address: a Jetson posting 1,000 defects a second comes from one.
        allowed = self._addresses.get(host)
        if allowed is None:
            if len(self._addresses) > 1000:
                self._addresses.clear()
            allowed = self._addresses[host] = self._decide_address(host)
        return allowed

    def _decide_address(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def check(self, request) -> defer.Deferred:
        """Fires with the actor's name, or fails with HTTPError 401."""
        token = bearer_token(_header(request, b"authorization"))
        host = getattr(request.getClientAddress(), "host", "")
        if token is None:
            if self._address_allowed(host):
                return defer.succeed(f"address:{host}")
            return defer.fail(HTTPError(401, "authentication required",
                                        "send 'Authorization: Bearer <token>' (made by ccl ingest-token create NAME)",
                                        {b"www-authenticate": b"Bearer"}))
        digest = token_digest(token)
        now = self._clock.seconds()
        name, checked_at = self._cache.get(digest, (None, 0.0))
        if name is not None and now - checked_at < self._cache_seconds:
            return defer.succeed(name)

        def found(token_name):
            if token_name is None:
                self._cache.pop(digest, None)
                raise HTTPError(401, "invalid token", "the bearer token is unknown or revoked",
                                {b"www-authenticate": b'Bearer error="invalid_token"'})
            name = f"token:{token_name}"
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[digest] = (name, now)
            return name

        return self._tokens.actor_for(digest).addCallback(found)


def client_host(request) -> str | None:
    """The client's IP address (None for a UNIX socket)."""
    return getattr(request.getClientAddress(), "host", None)


def _header(request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return value.decode("latin-1") if isinstance(value, bytes) else value


class RawJSON(str):
    """JSON text made elsewhere (PostgreSQL's row_to_json), put into a reply as it is."""


def _dumps(body) -> str:
    # A reply holding one RawJSON value (a stored row) is assembled without decoding it.
    if isinstance(body, dict) and any(isinstance(v, RawJSON) for v in body.values()):
        parts = [f"{json.dumps(k)}: {v if isinstance(v, RawJSON) else json.dumps(v, ensure_ascii=False, default=str)}"
                 for k, v in body.items()]
        return "{" + ", ".join(parts) + "}"
    return json.dumps(body, ensure_ascii=False, default=str)


def json_reply(request, status: int, body) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    data = _dumps(body).encode("utf-8")
    # With a length, twisted.web sends the reply in one piece instead of chunked (no separate
    # write for the closing chunk: a tenth of the CPU of a small POST).
    request.setHeader(b"content-length", b"%d" % len(data))
    return data


def endpoint(route_name: str):
    """Wrap a route: authenticate, run, turn known failures into JSON 4xx/503, count the result.

    The handler returns ``(status, body)`` or a twisted.web resource (file downloads).
    """

    def decorate(handler):
        @functools.wraps(handler)
        @defer.inlineCallbacks
        def wrapper(self, request, *args, **kwargs):
            try:
                actor = yield self.gate.check(request)
                request.ccl_actor = actor
                result = handler(self, request, *args, **kwargs)
                if inspect.iscoroutine(result):
                    result = defer.ensureDeferred(result)
                result = yield result
            except HTTPError as error:
                for key, value in error.headers.items():
                    request.setHeader(key, value)
                # The Jetson API's replies always carry "details" (null when there are none).
                result = (error.status, {"error": error.error, "details": error.details})
            except StorageUnavailable as error:
                log.error("image store unavailable: {error}", error=str(error))
                result = (503, {"error": "image storage unavailable", "details": str(error)})
            except StoreUnavailable as error:
                log.warn("database unavailable for {route}: {error}", route=route_name, error=str(error).strip())
                result = (503, {"error": "database unavailable", "details": "try again shortly"})
            except Exception:
                log.failure("{route} failed", route=route_name)
                result = (500, {"error": "internal error", "details": "logged on the server"})
            if not isinstance(result, tuple):
                self.requests.inc(route=route_name, status=200)
                return result
            status, body = result
            self.requests.inc(route=route_name, status=status)
            if status >= 400:
                log.info("{route}: {status} {error} for {client}", route=route_name, status=status,
                         error=body.get("error"), client=getattr(request.getClientAddress(), "host", "?"))
            return json_reply(request, status, body)

        return wrapper

    return decorate


def read_json(request, max_bytes: int | None = None):
    """The request body as JSON; HTTPError 415/400 otherwise."""
    return parse_json(json_content(request).read())


def json_content(request):
    """The body (a file, at its start) of an application/json request; HTTPError 415 otherwise."""
    content_type = (_header(request, b"content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPError(415, "send application/json", f"Content-Type is {content_type or 'missing'}")
    request.content.seek(0)
    return request.content


def parse_json(raw: bytes):
    """Decoded JSON, or HTTPError 400 saying why not.

    orjson first (a 1,000-defect batch parses in less than half the time); what it refuses
    (NaN, integers over 64 bits, lone surrogates... and broken JSON) goes to the json module,
    so the result, and the reason given for broken JSON, are exactly the json module's.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise HTTPError(400, "the body is not valid JSON", str(error)) from None


def int_arg(request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None or raw == b"":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"{name} must be a whole number", raw.decode("latin-1")[:40]) from None
    if not minimum <= value <= maximum:
        raise HTTPError(400, f"{name} must be between {minimum} and {maximum}", value)
    return value


def text_arg(request, name: str) -> str | None:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None or raw == b"":
        return None
    return raw.decode("utf-8", "replace")
