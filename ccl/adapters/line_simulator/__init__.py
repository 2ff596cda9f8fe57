"""``ccl simulate line``: play a run of the whole line (``ccl.domain.line_simulation``) to the
plant server on one machine.

The MES telegrams go to the MES listener (replies checked as ``ccl simulate mes`` does); each
camera's Jetson box uploads its image pairs to ccl-images, its defect batches and heartbeats
to ccl-defects. Events are played at ``start + at / speedup`` of the reactor's clock; what each
message says of time (telegram headers, ``captured_at``, ``detection_time``, heartbeat
periods) is the run's own clock, ``plan.start + at``. A box works through its requests one
after another, as the edge software does, so a slow server delays that box, never the MES.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import attrs
import treq
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from ccl.adapters.line_simulator.images import image_pair
from ccl.adapters.mes.simulate_mes import Sender, Tally, connect
from ccl.adapters.tls import https_policy
from ccl.domain.line_simulation import Event, Run
from ccl.domain.telegrams import PLANT_TZ, Layouts

log = Logger()


@attrs.frozen
class Targets:
    mes: tuple[str, int]
    images_url: str  # e.g. http://127.0.0.1:8081
    defects_url: str  # e.g. http://127.0.0.1:8082
    token: str | None = None
    heartbeats: bool = True
    #: CA file https URLs are verified with (``[tls] ca_file``; None: the system's trust store).
    ca_file: str | None = None


@attrs.define
class HttpTally:
    answers: Counter = attrs.Factory(Counter)  # (kind, status) -> n
    failures: list = attrs.Factory(list)  # (kind, status or error, detail), the first few
    heartbeat_missing: bool = False  # the server has no /inspection/heartbeat (404)

    def failed(self, kind: str, status, detail: str) -> None:
        self.answers[(kind, status)] += 1
        if len(self.failures) < 20:
            self.failures.append((kind, status, detail[:300]))

    @property
    def ok(self) -> bool:
        return not self.failures


class Box:
    """One camera's Jetson box: its requests in order, one at a time."""

    def __init__(self, camera: str, client: treq.client.HTTPClient, targets: Targets, tally: HttpTally):
        self.camera, self.client, self.targets, self.tally = camera, client, targets, tally
        self.headers = {"Authorization": f"Bearer {targets.token}"} if targets.token else {}
        self.files: dict[str, tuple[str, str]] = {}  # event_id -> (original, labeled) as stored
        self._queue = defer.succeed(None)

    def submit(self, event: Event) -> None:
        work = {"pair": self._pair, "batch": self._batch, "heartbeat": self._heartbeat}[event.kind]
        self._queue.addCallback(lambda _: work(event.payload))
        self._queue.addErrback(lambda failure: self.tally.failed(event.kind, "error", failure.getErrorMessage()))

    def idle(self) -> defer.Deferred:
        done = defer.Deferred()
        self._queue.addBoth(lambda result: (done.callback(None), result)[1])
        return done

    @defer.inlineCallbacks
    def _pair(self, defect: dict):
        original, labeled = yield threads.deferToThread(image_pair, defect)
        fields = {"coil_number": defect["coil_number"], "camera_id": self.camera, "captured_at": defect["detection_time"]}
        files = {"original_image": ("original.jpg", "image/jpeg", original),
                 "labeled_image": ("labeled.png", "image/png", labeled)}
        status, body = yield self._post(self.targets.images_url + "/upload/pair", data=fields, files=files)
        if status == 201:
            data = body["data"]
            self.files[defect["event_id"]] = (data["original_image"]["filename"], data["labeled_image"]["filename"])
        self._count("pair", status, body)

    @defer.inlineCallbacks
    def _batch(self, batch: dict):
        defects = []
        for item in batch["defects"]:
            stored = self.files.get(item["event_id"])
            if stored:
                item = dict(item, original_image_path=stored[0], labeled_image_path=stored[1])
            defects.append(item)
        body = {"coil_number": batch["coil_number"], "defects": defects,
                "batch_info": {"camera_id": self.camera, "source": "ccl simulate line"}}
        status, answer = yield self._post(self.targets.defects_url + "/defect/batch", json=body)
        self._count("batch", status, answer)

    @defer.inlineCallbacks
    def _heartbeat(self, beat: dict):
        if not self.targets.heartbeats or self.tally.heartbeat_missing:
            return
        status, answer = yield self._post(self.targets.defects_url + "/inspection/heartbeat", json=beat)
        if status == 404:
            self.tally.heartbeat_missing = True  # an older server: heartbeats are optional
            return
        self._count("heartbeat", status, answer)

    @defer.inlineCallbacks
    def _post(self, url: str, **kwargs):
        response = yield self.client.post(url, headers=self.headers, **kwargs)
        content = yield response.content()
        try:
            parsed = json.loads(content)
        except ValueError:
            parsed = {"error": content[:200].decode("utf-8", "replace")}
        return response.code, parsed

    def _count(self, kind: str, status: int, body) -> None:
        if 200 <= status < 300:
            self.tally.answers[(kind, status)] += 1
        else:
            self.tally.failed(kind, status, f"{self.camera}: {body}")


@defer.inlineCallbacks
def play(reactor, run: Run, layouts: Layouts, targets: Targets, *, speedup: float = 1.0, line_code: str = "CCL1",
         timeout: float = 10.0, out: Callable[[str], None], mes_tally: Tally | None = None,
         http_tally: HttpTally | None = None):
    """Play ``run``; fires with (mes tally, http tally) once every reply is in or ``timeout`` passed."""
    mes_tally = mes_tally if mes_tally is not None else Tally()
    http_tally = http_tally if http_tally is not None else HttpTally()
    host, port = targets.mes
    client = yield connect(reactor, layouts, host, port, mes_tally, out)
    sender = Sender(reactor, client, layouts, mes_tally, line_code)
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    http = treq.client.HTTPClient(Agent(reactor, contextFactory=https_policy(targets.ca_file), pool=pool))
    boxes = {camera: Box(camera, http, targets, http_tally) for camera in run.plan.cameras}
    out(f"playing {len(run.coils)} coils, {len(run.defects)} defects, {run.duration_s:.0f} s of line"
        f" at {speedup:g}x: MES {host}:{port}, images {targets.images_url}, defects {targets.defects_url}")
    started = reactor.seconds()
    try:
        for event in run.events:
            wait = started + event.at / speedup - reactor.seconds()
            if wait > 0.0005:
                yield task.deferLater(reactor, wait, lambda: None)
            if event.kind == "telegram":
                if sender.lost:
                    out("MES connection lost")
                    break
                sent_at = (run.plan.start + timedelta(seconds=event.at)).astimezone(PLANT_TZ)
                seq = sender.send(event.payload["tc_code"], event.payload["values"], sent_at)
                if event.payload["note"]:
                    out(f"t={event.at:7.1f}s  TC {event.payload['tc_code']} #{seq}: {event.payload['note']}")
            else:
                boxes[event.camera].submit(event)
        yield defer.gatherResults([box.idle() for box in boxes.values()])
        yield sender.finish(timeout)
    finally:
        yield pool.closeCachedConnections()
    return mes_tally, http_tally


def report(mes_tally: Tally, http_tally: HttpTally, out: Callable[[str], None], mes_report) -> int:
    """Print how it went; 0 when every telegram was ACKed and every upload taken."""
    mes_code = mes_report(mes_tally, out)
    kinds = Counter()
    for (kind, status), count in sorted(http_tally.answers.items(), key=str):
        kinds[kind] += count
        out(f"jetson:  {kind} answered {status}: {count}")
    if http_tally.heartbeat_missing:
        out("jetson:  the server has no /inspection/heartbeat (404): heartbeats skipped")
    for kind, status, detail in http_tally.failures:
        out(f"FAILED:  {kind} {status}: {detail}")
    ok = mes_code == 0 and http_tally.ok
    out("result:  all uploads taken" if http_tally.ok else "result:  uploads FAILED")
    return 0 if ok else 1
