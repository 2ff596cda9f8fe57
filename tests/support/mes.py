"""Helpers for MES tests: telegrams, an in-process MES service, a loopback client."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import attrs
from twisted.internet import defer, endpoints, protocol, reactor, task

from ccl.adapters.gokiwon.service import GokiwonSettings
from ccl.adapters.mes.service import MesSettings
from ccl.services.mes import makeService
from ccl.adapters.storage.localdb import free_port
from ccl.domain.telegrams import PLANT_TZ, TelegramFramer, decode, encode, encode_alive, load_layouts
from tests.support.waiting import wait_for  # noqa: F401 (imported from here by tests)

LAYOUTS = load_layouts()
SENT_AT = datetime.datetime(2025, 7, 3, 15, 29, 6, tzinfo=PLANT_TZ)


def schedule(seq: int, coil: str = "H477707", customer: str = "이알텍㈜", **extra) -> bytes:
    values = {"coil_number": coil, "mo_number": "C401005", "product_group": "3", "material_code": "F37EA4M-49RE6A",
              "customer_name": customer, "ccl_bom": "H7850B", "thickness": decimal.Decimal("0.372"), "width": 1212,
              "weight": 7950, "length_value": 3449, "through_plate": "Z", "sequence_order": 1}
    values.update(extra)
    return encode(LAYOUTS, "4000", values, sequence_no=seq, sent_at=SENT_AT)


def cut(seq: int, coil: str = "H477707") -> bytes:
    return encode(LAYOUTS, "4001", {"coil_number": coil, "cut_mode": 1, "winding_length": 3449},
                  sequence_no=seq, sent_at=SENT_AT)


def wpd(seq: int, coil: str = "H477707") -> bytes:
    return encode(LAYOUTS, "4002", {"coil_number": coil}, sequence_no=seq, sent_at=SENT_AT)


def speed(seq: int, mpm: int = 120) -> bytes:
    return encode(LAYOUTS, "4003", {"line_speed": mpm}, sequence_no=seq, sent_at=SENT_AT)


def alive(seq: int, count: int = 1) -> bytes:
    return encode_alive(LAYOUTS, alive_count=count, sequence_no=seq, sent_at=SENT_AT)


def settings(dsn: str, var: Path, **overrides) -> MesSettings:
    values = dict(dsn=dsn, pool_size=2, journal_dir=var / "journal",
                  listen=f"tcp:{free_port()}:interface=127.0.0.1",
                  status_listen=f"tcp:{free_port()}:interface=127.0.0.1", reply_ack=True, line_code="CCL1",
                  journal_fsync=True, journal_segment_bytes=64 << 20, idle_timeout=60.0, max_connections=64,
                  write_batch=2000, layout_path=None)
    values.update(overrides)
    return MesSettings(**values)


def port_of(endpoint: str) -> int:
    return int(endpoint.split(":")[1])


#: Forwarding to 고기원 off, as in the MES tests that do not look at it.
NO_FORWARDING = GokiwonSettings(host="127.0.0.1", ports={}, ack_listen="tcp:0:interface=127.0.0.1", enabled=False)


class RunningMes:
    """A ccl-mes service tree as ``makeService`` builds it, and the parts tests look at."""

    def __init__(self, service, settings: MesSettings):
        self.service = service
        self.settings = settings
        self.pipeline = service.getServiceNamed("pipeline").pipeline
        self.journal = self.pipeline.journal
        self.writer = self.pipeline.writer
        database = service.getServiceNamed("database")
        self.db = database.db
        self.forwarding = database.namedServices.get("gokiwon")
        self.factory = service.getServiceNamed("mes").factory
        self.links = self.factory.links
        status = service.getServiceNamed("status")
        self.registry = status.registry
        self.health = status.health


@defer.inlineCallbacks
def start_service(testcase, dsn: str, var: Path | None = None, gokiwon: GokiwonSettings = NO_FORWARDING,
                  **overrides):
    """An in-process MES service (``makeService``) on free loopback ports, stopped at clean-up."""
    if var is None:
        var = Path(testcase.mktemp()).absolute()
        var.mkdir(parents=True)
    mes_settings = settings(dsn, var, **overrides)
    service = makeService({"settings": mes_settings, "layouts": LAYOUTS, "gokiwon": gokiwon}, reactor)
    service.startService()
    testcase.addCleanup(service.stopService)
    # The listener listens synchronously for tcp; make sure the port is there.
    yield task.deferLater(reactor, 0, lambda: None)
    return RunningMes(service, mes_settings)


@attrs.define
class Reply:
    tc_code: str
    acked_tc_code: str
    acked_sequence_no: int
    result_code: str
    raw: bytes


class MesClient(protocol.Protocol):
    """Sends bytes, collects the decoded replies in order."""

    def __init__(self):
        self.replies: list[Reply] = []
        self.raw = b""
        self.closed = defer.Deferred()
        self._framer = TelegramFramer(LAYOUTS)

    def connectionMade(self):  # noqa: N802
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):  # noqa: N802
        self.raw += data
        for item in self._framer.feed(data):
            telegram = decode(item.raw, LAYOUTS)
            f = telegram.fields
            self.replies.append(Reply(telegram.tc_code, f["acked_tc_code"], f["acked_sequence_no"],
                                      f["result_code"], item.raw))

    def connectionLost(self, reason):  # noqa: N802
        self.closed.callback(None)

    def wait_replies(self, count: int, timeout: float = 30.0):
        return wait_for(lambda: len(self.replies) >= count, f"{count} replies", timeout=timeout)


@defer.inlineCallbacks
def connect(testcase, service_or_port):
    """A connected MesClient, disconnected at clean-up."""
    port = service_or_port if isinstance(service_or_port, int) else port_of(service_or_port.settings.listen)
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    client = yield endpoints.connectProtocol(endpoint, MesClient())

    def close():
        if not client.closed.called:
            client.transport.loseConnection()
        return client.closed

    testcase.addCleanup(close)
    return client


class ProcessOutput(protocol.ProcessProtocol):
    """Collects a child's output; ``ended`` fires with its exit reason."""

    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()

    def outReceived(self, data):  # noqa: N802
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):  # noqa: N802
        self.ended.callback(reason.value)


def spawn_ccl_mes(testcase, env: dict, cwd: str):
    """``twistd -n ccl-mes`` as a real process (killed at clean-up); returns (process, output)."""
    import sys

    output = ProcessOutput()
    args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
            "--logfile=-", "ccl-mes"]
    process = reactor.spawnProcess(output, sys.executable, args, env=env, path=cwd)

    def kill():
        if process.pid is not None:
            process.signalProcess("KILL")
            return output.ended

    testcase.addCleanup(kill)
    return process, output


@defer.inlineCallbacks
def connect_when_up(testcase, port: int, output: ProcessOutput):
    """A MesClient connected to ``port`` as soon as the child listens; fails if it exits first."""
    from twisted.internet import error

    for _ in range(400):
        try:
            client = yield connect(testcase, port)
            return client
        except error.ConnectError:
            if output.ended.called:
                raise AssertionError("ccl-mes exited:\n" + output.output.decode(errors="replace"))
            yield task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("ccl-mes did not listen:\n" + output.output.decode(errors="replace"))
