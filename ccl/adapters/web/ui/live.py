"""Live events for browsers: one ``LISTEN ccl_events`` per UI process, fanned out by SSE.

The services announce what they stored with ``NOTIFY ccl_events`` and a JSON payload
(``{"table": "defect_detections", "id": ...}`` and the like). :class:`EventHub` holds the
one LISTEN of this process and writes each event to every connected browser as a
Server-Sent Event whose ``event:`` name is the topic (:func:`topic`), so a page subscribes
only to what it shows. Browsers then fetch what changed from the JSON endpoints: the event
says *that* something changed, the database stays the one source of the data.

A comment line every ``heartbeat`` seconds keeps proxies and the browser's EventSource from
timing out and lets us notice dead connections; a browser that goes away is dropped at once.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

HEARTBEAT_SECONDS = 15.0
#: The browser's EventSource waits this long before reconnecting.
RETRY_MS = 2000

# table (or TC code) named in a NOTIFY payload -> SSE event name
_TOPICS = {
    "tc_4003_speed": "speed", "4003": "speed",
    "tc_4000_schedule": "coil", "4000": "coil", "tc_4001_cut": "coil", "4001": "coil",
    "tc_4002_wpd": "coil", "4002": "coil",
    "defect_detections": "defect", "defect": "defect", "defects": "defect",
    "defect_reviews": "review",
    "images": "image", "image": "image",
    "link_status": "link", "link": "link",
    "alerts": "alert", "alert": "alert",
    "ai_models": "model", "ai_model_metrics": "model",
    # coil tracking: placements written (with the tracked coils they changed), the running
    # coil's inspected metres (with each speed sample)
    "tracking_defects": "tracking", "tracking_images": "tracking", "tracking_coils": "tracking",
}


def topic(payload: Any) -> str:
    """The SSE event name for a NOTIFY payload; ``event`` when it names nothing we know."""
    if isinstance(payload, dict):
        for key in ("table", "tc_code", "tc", "kind", "type", "event"):
            value = payload.get(key)
            if value is not None and str(value) in _TOPICS:
                return _TOPICS[str(value)]
    return "event"


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One Server-Sent Event (data as one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, ensure_ascii=False, default=str).replace("\n", " ")
    return f"{head}event: {event}\ndata: {body}\n\n".encode("utf-8")


class EventHub:
    """Fans the process's one LISTEN (an ``IEventFeed``) out to any number of SSE clients
    (``write(bytes)`` callables)."""

    def __init__(self, reactor, feed, heartbeat: float = HEARTBEAT_SECONDS):
        self._reactor = reactor
        self._feed = feed
        self._clients: set = set()
        self._listening: defer.Deferred | None = None
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = reactor
        self._interval = heartbeat
        self._sequence = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    def start(self) -> defer.Deferred:
        """LISTEN (once); fires when the LISTEN is in place."""
        if self._listening is None:
            self._listening = defer.Deferred()
            listening = defer.maybeDeferred(self._feed.subscribe, self._on_notify)
            listening.addBoth(self._listened)
        result = defer.Deferred()
        self._listening.addBoth(lambda value: (result.callback(None), value)[1])
        return result

    def _listened(self, result):
        if isinstance(result, Failure):  # the listener reconnects by itself; go on
            log.warn("LISTEN for live events not in place yet: {error}", error=result.getErrorMessage())
        self._listening.callback(None)

    def stop(self) -> None:
        if self._heartbeat.running:
            self._heartbeat.stop()
        self._clients.clear()

    def add(self, write) -> None:
        self._clients.add(write)
        if not self._heartbeat.running:  # heartbeats only while someone listens
            self._heartbeat.start(self._interval, now=False)

    def remove(self, write) -> None:
        self._clients.discard(write)
        if not self._clients and self._heartbeat.running:
            self._heartbeat.stop()

    def _on_notify(self, payload) -> None:
        self._sequence += 1
        self.broadcast(frame(topic(payload), payload, self._sequence))

    def broadcast(self, data: bytes) -> None:
        for write in list(self._clients):
            try:
                write(data)
            except Exception:  # a connection that broke between two events
                log.failure("dropping an SSE client that failed")
                self.remove(write)

    def _beat(self) -> None:
        self.broadcast(b": ping\n\n")


def hub(ui) -> EventHub:
    """The hub of this UI process, made on first use."""
    found = getattr(ui, "_live_hub", None)
    if found is None:
        found = ui._live_hub = EventHub(ui.reactor, ui.uses.events)
    return found


async def serve(ctx, hello: dict | None = None) -> bytes:
    """Answer ``ctx.request`` with the live event stream until the browser goes away
    (``?once=1``: only the ``hello`` event, sent once the LISTEN is in place, then the end)."""
    request = ctx.request
    request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-accel-buffering", b"no")
    if request.method == b"HEAD":
        return b""
    live = hub(ctx.ui)
    await live.start()
    request.write(f"retry: {RETRY_MS}\n\n".encode("ascii"))
    request.write(frame("hello", hello or {}))
    if request.args.get(b"once"):  # a probe (monitoring, tests): the stream is up, that is all
        return b""

    def write(data: bytes) -> None:
        if not request.finished and not request._disconnected:
            request.write(data)

    live.add(write)
    # Klein cancels what we return when the browser goes away. Firing it ourselves (instead of
    # letting it fail with CancelledError) ends the handler quietly; the client is dropped either way.
    done: defer.Deferred = defer.Deferred(canceller=lambda d: d.callback(b""))
    request.notifyFinish().addBoth(lambda _: None if done.called else done.callback(b""))

    def finished(result):
        live.remove(write)
        return result

    done.addBoth(finished)
    return await done
