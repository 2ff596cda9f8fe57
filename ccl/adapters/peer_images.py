"""Image files held by the other plant server, fetched from its ccl-images (two plant servers).

Both machines' ccl-images accept uploads into their own image store and write their
``[images] host_name`` into ``images.stored_on``. A UI whose store lacks a file asks the holding
host's image service for it (``GET /image/{kind}/{filename}``, the route the Jetson API already
has), with the file name of the database row only. The answer is read into memory up to
``[images] max_file_mb`` (the most an upload may be), within ``[images] peer_timeout_seconds``
for the whole exchange, a few fetches at a time: a slow or dead peer costs one request a
timeout, never the reactor, and never more memory than ``concurrency`` files.

https peers are verified with ``[tls] ca_file`` (ccl/adapters/tls.py), as every client of our
listeners is. The peer's ingest gate admits this machine by ``[ingest] allow`` (its address) or
by the bearer token in ``[images] peer_token_file`` (``ccl ingest-token create``; the tokens live
in the one database, so one token is valid on both machines).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from urllib.parse import quote

import attrs
import treq
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from ccl.adapters.tls import https_policy
from ccl.config import Config, ConfigError
from ccl.domain.ingest.images import is_stored_name
from ccl.ports import ImageNotOnPeer, IPeerImages, PeerUnavailable

log = Logger()

MB = 1024 * 1024
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@attrs.frozen
class ImageHostSettings:
    """``[images] host_name``, ``peers``, ``peer_token_file``, ``peer_timeout_seconds`` (ccl.ini)."""

    host_name: str
    #: host name -> base URL of its ccl-images (http:// or https://), this machine excluded.
    peers: Mapping[str, str] = attrs.field(factory=dict)
    #: The bearer token sent to the peers (None: none; the peer's [ingest] allow must admit us).
    peer_token: str | None = attrs.field(default=None, repr=False)
    timeout: float = 10.0
    max_bytes: int = 50 * MB

    @classmethod
    def from_config(cls, config: Config) -> ImageHostSettings:
        i = "images"
        name = host_name(config)
        peers = {}
        for item in config.get_list(i, "peers"):
            peer, _, url = (part.strip() for part in item.partition("="))
            if not _HOST_NAME.fullmatch(peer) or not url.startswith(("http://", "https://")):
                raise ConfigError(f"{config.where(i, 'peers')}: {item!r} is not NAME=http(s)://HOST:PORT")
            if peer != name:  # the same list may be copied to every machine
                peers[peer] = url.rstrip("/")
        token = None
        if config.get(i, "peer_token_file"):
            path = config.get_path(i, "peer_token_file")
            try:
                token = path.read_text(encoding="utf-8").strip().splitlines()[0].strip()
            except (OSError, UnicodeError, IndexError) as error:
                raise ConfigError(f"{config.where(i, 'peer_token_file')}: no token in {path}: {error}") from None
        return cls(host_name=name, peers=peers, peer_token=token,
                   timeout=config.get_float(i, "peer_timeout_seconds", 0.1, 600),
                   max_bytes=config.get_int(i, "max_file_mb", 1, 1024) * MB)


def host_name(config: Config) -> str:
    """``[images] host_name``, or this machine's host name (its first label) when empty."""
    name = config.get("images", "host_name") or socket.gethostname().split(".")[0]
    if not _HOST_NAME.fullmatch(name):
        raise ConfigError(f"{config.where('images', 'host_name')}: {name!r} is not a host name (A-Z a-z 0-9 . _ -)")
    return name


class _TooLarge(Exception):
    pass


@implementer(IPeerImages)
class PeerImages:
    """Fetches image files from the configured peers' ccl-images (see the module's text)."""

    def __init__(self, reactor, settings: ImageHostSettings, ca_file: str | None, concurrency: int = 4):
        self.host_name = settings.host_name
        self._reactor = reactor
        self._settings = settings
        self._slots = defer.DeferredSemaphore(concurrency)
        # Not persistent: a fetch is rare (only for the other machine's images) and no idle
        # connection outlives it.
        agent = Agent(reactor, contextFactory=https_policy(ca_file), connectTimeout=settings.timeout,
                      pool=HTTPConnectionPool(reactor, persistent=False))
        self._http = treq.client.HTTPClient(agent)

    def fetch(self, host: str, kind: str, filename: str) -> defer.Deferred:
        base = self._settings.peers.get(host)
        if base is None:
            return defer.fail(ImageNotOnPeer(host, "no [images] peers entry names this host"))
        if not is_stored_name(kind, filename):  # the row's name, still never a path
            return defer.fail(ImageNotOnPeer(host, "the row's file name is not one ccl-images makes"))
        url = f"{base}/image/{quote(kind)}/{quote(filename)}"

        timed_out = []

        def one():
            d = defer.ensureDeferred(self._get(host, url))
            # The whole exchange (connect, headers, body), not only the connect; treq reports
            # the cancellation wrapped (ResponseNeverReceived...), hence the flag.
            call = self._reactor.callLater(self._settings.timeout, lambda: (timed_out.append(True), d.cancel()))

            def done(result):
                if call.active():
                    call.cancel()
                return result

            return d.addBoth(done)

        def failed(failure):
            if timed_out:
                reason = "no answer within {:g} s".format(self._settings.timeout)
            elif failure.check(ImageNotOnPeer, PeerUnavailable):
                return failure
            else:
                reason = _describe(failure.value)
            log.warn("image {filename} from {host} ({url}): {reason}", filename=filename, host=host, url=url,
                     reason=reason)
            raise PeerUnavailable(host, reason)

        return self._slots.run(one).addErrback(failed)

    async def _get(self, host: str, url: str) -> bytes:
        headers = {b"accept": [b"image/*"]}
        if self._settings.peer_token:
            headers[b"authorization"] = [b"Bearer " + self._settings.peer_token.encode("ascii")]
        response = await self._http.get(url, headers=headers)
        if response.code != 200:
            await response.content()  # the short JSON error; read so that the connection ends cleanly
            if response.code == 404:
                raise ImageNotOnPeer(host, "the holding host has no such file")
            if response.code in (401, 403):
                raise PeerUnavailable(host, f"the image service refused us ({response.code}): set [images]"
                                            " peer_token_file or its [ingest] allow")
            raise PeerUnavailable(host, f"the image service answered {response.code}")
        limit = self._settings.max_bytes
        # A declared length over the limit ends the transfer at its first chunk (collect's
        # exception closes the connection); else UNKNOWN_LENGTH: counted as it arrives.
        declared = response.length if isinstance(response.length, int) else 0
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > limit or declared > limit:
                raise _TooLarge()
            chunks.append(data)

        try:
            await treq.collect(response, collect)
        except _TooLarge:
            raise PeerUnavailable(host, f"the file is larger than {limit} bytes") from None
        return b"".join(chunks)


def _describe(error: BaseException) -> str:
    """A short reason for the log and the 502's details (a TLS refusal says so)."""
    text = str(error) or type(error).__name__
    reasons = getattr(error, "reasons", None)  # ResponseNeverReceived / ResponseFailed wrap the cause
    if reasons:
        text = "; ".join(str(r.value) or type(r.value).__name__ for r in reasons)
    return f"{type(error).__name__}: {text}"[:300]


async def fetch_from_holders(peers: IPeerImages, wanted: Mapping[int, tuple[tuple[str, str, str], ...]]
                             ) -> dict[int, bytes]:
    """For each key, the bytes of the first of its (host, kind, file name) that its host (another
    one than this) gives; keys none of whose hosts can are left out (logged). All keys at once,
    as many at a time as ``peers`` allows."""

    async def first(key: int, candidates) -> tuple[int, bytes | None]:
        for host, kind, filename in candidates:
            if host == peers.host_name:
                continue
            try:
                return key, await peers.fetch(host, kind, filename)
            except (ImageNotOnPeer, PeerUnavailable) as error:
                log.info("image {filename} of {key} not fetched from {host}: {reason}", filename=filename, key=key,
                         host=host, reason=error.reason)
        return key, None

    results = await defer.gatherResults([defer.ensureDeferred(first(k, c)) for k, c in wanted.items()])
    return {key: data for key, data in results if data is not None}
