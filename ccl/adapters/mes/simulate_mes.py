"""``ccl simulate mes``: play a production run to an MES listener and check every reply.

Plays ``ccl.domain.production.production_run`` as the Dongkuk MES would: one TCP
connection, telegrams with a running sequence number (1..999999), in the run's timing
divided by ``speedup`` (or at a fixed ``rate`` per second), and matches each 4900/4901
reply to the telegram it answers. At the end it waits ``timeout`` seconds for the last
replies; the result is non-zero if any expected ACK is missing or a NAK came.
"""

from __future__ import annotations

import datetime
import itertools
from collections import Counter
from collections.abc import Callable

import attrs
from twisted.internet import defer, endpoints, protocol, task
from twisted.logger import Logger

from ccl.domain.production import production_run
from ccl.domain.telegrams import PLANT_TZ, Layouts, TelegramFramer, TelegramRejected, decode, encode
from ccl.domain.telegrams.layout import PROCESS

log = Logger()


@attrs.define
class Tally:
    sent: Counter = attrs.Factory(Counter)
    acked: Counter = attrs.Factory(Counter)
    naked: Counter = attrs.Factory(Counter)  # (tc, code) -> n
    unexpected: int = 0
    outstanding: dict = attrs.Factory(dict)  # (tc, seq) -> send time

    @property
    def missing(self) -> int:
        return len(self.outstanding)


class _Client(protocol.Protocol):
    def __init__(self, layouts: Layouts, tally: Tally, out: Callable[[str], None], verbose: bool):
        self.layouts = layouts
        self.tally = tally
        self.out = out
        self.verbose = verbose
        self.framer = TelegramFramer(layouts)
        self.lost = defer.Deferred()

    def connectionMade(self):  # noqa: N802
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):  # noqa: N802
        for item in self.framer.feed(data):
            try:
                reply = decode(item.raw, self.layouts)
            except (TelegramRejected, AttributeError):
                self.tally.unexpected += 1
                self.out(f"unreadable reply: {item.raw!r}")
                continue
            fields = reply.fields
            key = (fields.get("acked_tc_code"), fields.get("acked_sequence_no"))
            if reply.layout.name not in ("ack", "nak") or self.tally.outstanding.pop(key, None) is None:
                self.tally.unexpected += 1
                self.out(f"unexpected reply TC {reply.tc_code} for TC {key[0]} #{key[1]}")
                continue
            if fields.get("result_code") == "00":
                self.tally.acked[key[0]] += 1
                if self.verbose:
                    self.out(f"ACK TC {key[0]} #{key[1]}")
            else:
                self.tally.naked[(key[0], fields.get("result_code"))] += 1
                self.out(f"NAK TC {key[0]} #{key[1]}: result {fields.get('result_code')}")

    def connectionLost(self, reason):  # noqa: N802
        self.lost.callback(None)


@defer.inlineCallbacks
def connect(reactor, layouts: Layouts, host: str, port: int, tally: Tally, out: Callable[[str], None],
            verbose: bool = False):
    """A connection to an MES listener whose replies are counted in ``tally``."""
    endpoint = endpoints.TCP4ClientEndpoint(reactor, host, port, timeout=10)
    client = yield endpoints.connectProtocol(endpoint, _Client(layouts, tally, out, verbose))
    return client


class Sender:
    """Sends telegrams on a connection with a running sequence number (1..999999), stamped
    ``sent_at``; process telegrams await their reply in the tally."""

    def __init__(self, reactor, client: _Client, layouts: Layouts, tally: Tally, line_code: str = "CCL1"):
        self.reactor, self.client, self.layouts, self.tally, self.line_code = reactor, client, layouts, tally, line_code
        self._sequence = itertools.count(1)

    @property
    def lost(self) -> bool:
        return self.client.lost.called

    def send(self, tc_code: str, values: dict, sent_at: datetime.datetime) -> int:
        """Write one telegram (``4999``: an alive); returns its sequence number."""
        seq = (next(self._sequence) - 1) % 999999 + 1
        if tc_code == "4999":
            alive = self.layouts.by_name("alive")
            self.client.transport.write(encode(self.layouts, alive.tc_code, {"alive_count": seq % 10000, "state": "01"},
                                               line_code=self.line_code, sequence_no=seq, sent_at=sent_at))
            return seq
        raw = encode(self.layouts, tc_code, values, line_code=self.line_code, sequence_no=seq, sent_at=sent_at)
        if self.layouts.get(tc_code).kind == PROCESS:
            self.tally.outstanding[(tc_code, seq)] = self.reactor.seconds()
        self.tally.sent[tc_code] += 1
        self.client.transport.write(raw)
        return seq

    @defer.inlineCallbacks
    def finish(self, timeout: float):
        """Wait up to ``timeout`` seconds for the outstanding replies, then hang up."""
        deadline = self.reactor.seconds() + timeout
        while self.tally.outstanding and self.reactor.seconds() < deadline and not self.lost:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        if not self.lost:
            self.client.transport.loseConnection()
            yield self.client.lost


@defer.inlineCallbacks
def simulate(reactor, layouts: Layouts, host: str, port: int, *, count: int | None, speedup: float = 1.0,
             rate: float | None = None, seed: int = 1, line_code: str = "CCL1", timeout: float = 10.0,
             out: Callable[[str], None], verbose: bool = False, tally: Tally | None = None):
    """Play the run; returns the Tally (``missing``/``naked`` tell whether all went well)."""
    tally = tally if tally is not None else Tally()
    client = yield connect(reactor, layouts, host, port, tally, out, verbose)
    sender = Sender(reactor, client, layouts, tally, line_code)
    out(f"connected to {host}:{port}; playing the production run "
        + (f"at {rate:g} telegrams/s" if rate else f"at {speedup:g}x speed")
        + (f", {count} telegrams" if count else ", until stopped (Ctrl-C)"))
    started = reactor.seconds()
    process_sent = 0
    for event in production_run(seed):
        if count is not None and process_sent >= count:
            break
        if sender.lost:
            out("connection lost")
            break
        due = started + (process_sent / rate if rate else event.at / speedup)
        wait = due - reactor.seconds()
        if wait > 0.0005:
            yield task.deferLater(reactor, wait, lambda: None)
        sent_at = datetime.datetime.fromtimestamp(reactor.seconds(), PLANT_TZ)
        seq = sender.send(event.tc_code, event.values, sent_at)
        if event.tc_code != "4999" and layouts.get(event.tc_code).kind == PROCESS:
            process_sent += 1
        if event.note:
            out(f"t={event.at:7.0f}s  TC {event.tc_code} #{seq}: {event.note}")
    yield sender.finish(timeout)
    return tally


def report(tally: Tally, out: Callable[[str], None]) -> int:
    out("sent:    " + ", ".join(f"TC {tc}: {n}" for tc, n in sorted(tally.sent.items())))
    out("ACKed:   " + (", ".join(f"TC {tc}: {n}" for tc, n in sorted(tally.acked.items())) or "none"))
    out("NAKed:   " + (", ".join(f"TC {tc} code {code}: {n}" for (tc, code), n in sorted(tally.naked.items()))
                       or "none"))
    if tally.missing:
        shown = ", ".join(f"TC {tc} #{seq}" for tc, seq in sorted(tally.outstanding)[:10])
        out(f"MISSING: {tally.missing} telegrams got no reply ({shown}{', ...' if tally.missing > 10 else ''})")
    if tally.unexpected:
        out(f"unexpected replies: {tally.unexpected}")
    ok = not tally.missing and not tally.naked and not tally.unexpected
    out("result:  all telegrams ACKed" if ok else "result:  FAILED")
    return 0 if ok else 1
