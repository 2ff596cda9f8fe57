"""Who is connected to the MES listener and when each peer was last heard from.

Kept in memory for /health and /metrics, and copied into ``link_status`` (one row per
peer address) every few seconds, so the UI can show the link even if this process dies.
A database that is down only delays that copy.
"""

from __future__ import annotations

import json

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from ccl.domain.metrics import Registry

log = Logger()


@attrs.define
class PeerState:
    host: str
    connections: int = 0
    last_seen: float | None = None
    alive_count: int | None = None
    alive_state: str | None = None
    dirty: bool = True


class LinkTracker:
    """``save()`` copies what changed into ``link_status`` through ``db`` (ccl-mes runs it
    every few seconds with a TimerService)."""

    def __init__(self, clock, *, listener: str = "mes", registry: Registry | None = None, db=None):
        self._clock = clock
        self.listener = listener
        self._db = db
        self.peers: dict[str, PeerState] = {}
        self.connected: dict[str, float] = {}  # "host:port" -> connected since
        registry = registry or Registry()
        registry.gauge(f"{listener}_connected_peers", "Open connections on the listener",
                       read=lambda: len(self.connected))
        registry.gauge(f"{listener}_peer_last_seen_timestamp_seconds",
                       "When each peer address last sent anything (Unix time)",
                       read=lambda: {(("peer", p.host),): p.last_seen for p in self.peers.values() if p.last_seen})
        self._alive = registry.counter(f"{listener}_alive_total", "Alive telegrams (4999) received, by peer")

    def _peer(self, host: str) -> PeerState:
        peer = self.peers.get(host)
        if peer is None:
            peer = self.peers[host] = PeerState(host)
        return peer

    def opened(self, host: str, port: int) -> None:
        self.connected[f"{host}:{port}"] = self._clock.seconds()
        peer = self._peer(host)
        peer.connections += 1
        peer.dirty = True

    def closed(self, host: str, port: int) -> None:
        self.connected.pop(f"{host}:{port}", None)
        peer = self._peer(host)
        peer.connections = max(0, peer.connections - 1)
        peer.dirty = True

    def seen(self, host: str) -> None:
        peer = self.peers.get(host)
        if peer is not None:
            peer.last_seen = self._clock.seconds()
            peer.dirty = True

    def alive(self, host: str, alive_count: int | None, state: str | None) -> None:
        peer = self._peer(host)
        peer.last_seen = self._clock.seconds()
        peer.alive_count = alive_count
        peer.alive_state = state
        peer.dirty = True
        self._alive.inc(peer=host)

    def snapshot(self) -> dict:
        return {
            "connections": sorted(self.connected),
            "peers": {host: {"connections": p.connections, "last_seen": p.last_seen,
                             "alive_count": p.alive_count, "state": p.alive_state}
                      for host, p in sorted(self.peers.items())},
        }

    # link_status in PostgreSQL ------------------------------------------------------------

    def save(self) -> defer.Deferred:
        """Upsert the peers that changed; a failure leaves them marked for the next round."""
        changed = [p for p in self.peers.values() if p.dirty]
        if not changed:
            return defer.succeed(None)
        for peer in changed:
            peer.dirty = False
        rows = []
        for peer in changed:
            seen = peer.last_seen
            rows.append((f"{self.listener}:{peer.host}", self.listener, peer.connections > 0, seen,
                         peer.alive_count, json.dumps({"connections": peer.connections, "state": peer.alive_state})))
        saving = defer.gatherResults([self._db.runOperation(
            "INSERT INTO link_status (link, kind, connected, last_seen_at, alive_count, details, updated_at) "
            "VALUES (%s, %s, %s, to_timestamp(%s), %s, %s::jsonb, now()) "
            "ON CONFLICT (link) DO UPDATE SET connected = EXCLUDED.connected, "
            "last_seen_at = COALESCE(EXCLUDED.last_seen_at, link_status.last_seen_at), "
            "alive_count = COALESCE(EXCLUDED.alive_count, link_status.alive_count), "
            "details = EXCLUDED.details, updated_at = now()", row) for row in rows], consumeErrors=True)

        def failed(failure):
            for peer in changed:
                peer.dirty = True
            log.debug("link status not saved ({error}); will retry", error=failure.getErrorMessage())

        return saving.addErrback(failed)
