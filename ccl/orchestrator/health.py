"""Health checks of a child (HTTP /health, TCP connect, PostgreSQL connect) and /metrics scrapes."""

from __future__ import annotations

import json

from twisted.internet import defer, protocol, threads
from twisted.internet.endpoints import HostnameEndpoint
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss

from ccl.adapters.tls import https_policy
from ccl.domain.metrics import parse_text
from ccl.orchestrator.services import Check


class CheckFailed(Exception):
    """A health check failed; the message says how (shown in /status and the restart reason)."""


class _Nothing(protocol.Protocol):
    pass


def _agent(reactor, timeout: float, ca_file: str | None) -> Agent:
    # No persistent connections: a check is a fresh connection, as a client would make.
    # An https:// URL is verified against ca_file (the site's CA), never accepted unverified.
    return Agent(reactor, contextFactory=https_policy(ca_file), pool=HTTPConnectionPool(reactor, persistent=False),
                 connectTimeout=timeout)


class _Body(protocol.Protocol):
    """Collects a response body (at most ``limit`` bytes). Unlike readBody, a cancel that
    races with the end of the body is harmless: whichever comes first wins."""

    def __init__(self, limit: int = 4 * 1024 * 1024):
        self.done = defer.Deferred(canceller=self._cancel)
        self._chunks: list[bytes] = []
        self._size = 0
        self._limit = limit

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            if not self.done.called:
                self.done.errback(CheckFailed(f"response larger than {self._limit} bytes"))
            return
        self._chunks.append(data)

    def connectionLost(self, reason=protocol.connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(reason)

    def _cancel(self, d) -> None:
        if self.transport is not None:
            self.transport.stopProducing()


@defer.inlineCallbacks
def http_get(reactor, url: str, timeout: float, ca_file: str | None = None):
    """(status code, body bytes) of a GET, failing after ``timeout`` seconds; an https ``url``
    must show a certificate of ``ca_file``'s CA (None: the system's trust store)."""
    request = _agent(reactor, timeout, ca_file).request(b"GET", url.encode("ascii"))
    request.addTimeout(timeout, reactor)
    response = yield request
    body = _Body()
    response.deliverBody(body)
    body.done.addTimeout(timeout, reactor)
    content = yield body.done
    return response.code, content


@defer.inlineCallbacks
def _http(reactor, url: str, timeout: float, ca_file: str | None):
    try:
        code, body = yield http_get(reactor, url, timeout, ca_file)
    except defer.TimeoutError:
        raise CheckFailed(f"GET {url}: no answer within {timeout:g} s") from None
    except Exception as error:
        raise CheckFailed(f"GET {url}: {type(error).__name__}: {_short(error)}") from None
    if code != 200:
        raise CheckFailed(f"GET {url}: HTTP {code} {body[:200].decode('utf-8', 'replace')}")
    return reported(body)


#: What the monitor keeps of a service's own /health answer (shown in /status, read by the alerts).
REPORTED_KEYS = ("status", "database", "database_error")


def reported(body: bytes) -> dict | None:
    """The service's own view from its /health JSON (``status``, ``database``...), if it gives one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {key: value[key] for key in REPORTED_KEYS if key in value}


@defer.inlineCallbacks
def _tcp(reactor, target: str, timeout: float):
    host, _, port = target.rpartition(":")
    endpoint = HostnameEndpoint(reactor, host, int(port), timeout=timeout)
    try:
        connected = yield endpoint.connect(protocol.Factory.forProtocol(_Nothing))
    except Exception as error:
        raise CheckFailed(f"connect {target}: {_short(error)}") from None
    connected.transport.loseConnection()


def _postgres_connect(dsn: str, timeout: float) -> None:
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=max(1, int(timeout))).close()
    except psycopg2.Error as error:
        raise CheckFailed(f"postgres: {str(error).strip().splitlines()[0] if str(error).strip() else error}") from None


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


def run_check(reactor, check: Check, timeout: float) -> defer.Deferred:
    """Fires when healthy (with the service's reported view for HTTP checks, else None), fails
    with CheckFailed otherwise."""
    if check.kind == "http":
        return _http(reactor, check.target, timeout, check.ca_file)
    if check.kind == "tcp":
        return _tcp(reactor, check.target, timeout)
    if check.kind == "postgres":
        return threads.deferToThread(_postgres_connect, check.target, timeout)
    return defer.fail(CheckFailed(f"unknown check kind {check.kind}"))


@defer.inlineCallbacks
def scrape(reactor, url: str, timeout: float, ca_file: str | None = None):
    """Samples of a child's /metrics: [(name, labels, value)]."""
    code, body = yield http_get(reactor, url, timeout, ca_file)
    if code != 200:
        raise CheckFailed(f"GET {url}: HTTP {code}")
    return parse_text(body.decode("utf-8", "replace"))
