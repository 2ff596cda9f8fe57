"""Benchmark of forwarding to 고기원: MES-in to 고기원-in latency, and backlog drain after an outage.

Starts its own throw-away PostgreSQL cluster (fsync on, as in production), the MES service
as a real process (``twistd -n ccl-mes``, journal fsync on, forwarding with the default
settings: window 16, drain_rate 5000/s per channel, retry_max 2 s) and, in this process, an
MES client and the 고기원 simulator (which ACKs every telegram at once). Then:

1. latency at 100 and 1,000 telegrams/s (``--rates``), each run after a CHECKPOINT and a
   ``sync`` (what the set-up or an earlier run left dirty is written out first, as in
   bench/mes_ingest.py): from the write of each telegram to
   the MES port to its arrival at the simulator, p50/p99/max over the forwarded TCs. Once a
   channel has caught up, telegrams are forwarded as soon as the journal has them on disk
   (before the PostgreSQL commit); the run prints how many arrived before their outbox
   transaction began, the journal's synchronous write times, and the CPU seconds of ccl-mes
   per telegram (psutil) and of this bench process (whose garbage collector is off during the
   measured run, as in bench/mes_ingest.py, so that its own pauses do not count as latency);
2. drain: the simulator stops listening and cuts its connections for ``--outage`` seconds
   (default 60) while the MES keeps sending at ``--outage-rate`` telegrams/s; once every
   one of those is ACKed by ccl-mes and in the outbox, the simulator listens again. The
   drain time is measured from that moment (고기원 back) to the arrival of the LAST backlog
   entry at the simulator: it includes finding 고기원 again (reconnect back-off) and sending
   the backlog; both parts are printed, and when PostgreSQL has them all marked delivered.

The stream is a rotation of TC 4000, 4002, 4003, 4003, 4001 (4001 is stored, never forwarded).

Run: CCL_VENV=/work/venv-x $CCL_VENV/bin/python bench/forward_latency.py [--seconds 10] [--outage 60]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import json
import resource
import urllib.request

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, endpoints, protocol, task, threads  # noqa: E402

from ccl.adapters.gokiwon.simulator import GokiwonSimulator  # noqa: E402
from _mes import MesBench, settle_disk  # noqa: E402
from ccl.adapters.storage.localdb import free_port  # noqa: E402
from ccl.domain.telegrams import PLANT_TZ, encode, load_layouts  # noqa: E402

LAYOUTS = load_layouts()
ROTATION = ["4000", "4002", "4003", "4003", "4001"]
FORWARDED = {"4000", "4002", "4003"}


def make(tc: str, seq: int) -> bytes:
    sent_at = datetime.datetime.now(PLANT_TZ).replace(microsecond=0)
    values = {"4000": {"coil_number": f"H{seq:06d}", "customer_name": "이알텍㈜", "width": 1212, "weight": 7950},
              "4001": {"coil_number": f"H{seq:06d}", "cut_mode": 1, "winding_length": 3449},
              "4002": {"coil_number": f"H{seq:06d}"}, "4003": {"line_speed": seq % 300}}[tc]
    return encode(LAYOUTS, tc, values, line_code="CCL1", sequence_no=seq, sent_at=sent_at)


class MesClient(protocol.Protocol):
    def __init__(self):
        self.acks = 0

    def connectionMade(self):  # noqa: N802
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):  # noqa: N802
        self.acks += len(data) // LAYOUTS.by_name("ack").length


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    def __init__(self, reactor, args, mes_port: int, ack_port: int, dsn: str, service_pid: int, status_port: int):
        self.reactor, self.args, self.mes_port, self.ack_port, self.dsn = reactor, args, mes_port, ack_port, dsn
        self.service = psutil.Process(service_pid)
        self.status_port = status_port
        self.sent_at: dict[tuple[str, int], float] = {}
        self.arrived_at: dict[tuple[str, int], float] = {}
        self.arrived_wall: dict[tuple[str, int], float] = {}
        self.seq = 0
        self.sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=30, on_received=self.received)

    def received(self, item) -> None:
        key = (item.tc_code, item.sequence_no)
        if key not in self.arrived_at:
            self.arrived_at[key] = time.perf_counter()
            self.arrived_wall[key] = time.time()

    @defer.inlineCallbacks
    def send_at_rate(self, client: MesClient, rate: float, seconds: float):
        """Send ``rate`` telegrams/s for ``seconds``; returns the keys of the forwarded ones."""
        count = int(rate * seconds)
        items = []
        for _ in range(count):
            self.seq = self.seq % 999999 + 1
            tc = ROTATION[self.seq % len(ROTATION)]
            items.append((tc, self.seq, make(tc, self.seq)))
        begun = time.perf_counter()
        done = 0
        finished = defer.Deferred()

        def tick():
            nonlocal done
            due = min(count, int((time.perf_counter() - begun) * rate) + 1)
            if due > done:
                now = time.perf_counter()
                for tc, seq, _ in items[done:due]:
                    self.sent_at[(tc, seq)] = now
                client.transport.write(b"".join(raw for _, _, raw in items[done:due]))
                done = due
            if done >= count and not finished.called:
                finished.callback(None)

        loop = task.LoopingCall(tick)
        loop.clock = self.reactor
        loop.start(0.002)
        yield finished
        loop.stop()
        return [(tc, seq) for tc, seq, _ in items if tc in FORWARDED]

    @defer.inlineCallbacks
    def wait_arrived(self, keys, limit: float):
        waited = 0.0
        while not all(k in self.arrived_at for k in keys):
            if waited > limit:
                missing = sum(1 for k in keys if k not in self.arrived_at)
                raise SystemExit(f"gave up: {missing} telegrams not forwarded after {limit}s")
            yield task.deferLater(self.reactor, 0.01, lambda: None)
            waited += 0.01

    def committed_at(self, keys) -> dict:
        """created_at of the outbox rows (PostgreSQL's now() of the writer's transaction)."""
        with psycopg2.connect(self.dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT tc_code, sequence_no, extract(epoch FROM created_at) FROM forward_outbox")
            rows = {(tc.strip(), seq): float(at) for tc, seq, at in cursor.fetchall()}
        return {k: rows[k] for k in keys if k in rows}

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/health", timeout=5) as answer:
            return json.loads(answer.read())

    def pending(self) -> int:
        with psycopg2.connect(self.dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM forward_outbox WHERE state <> 'delivered'")
            return cursor.fetchone()[0]

    @defer.inlineCallbacks
    def main(self, ports: dict[str, int]):
        self.sim.start_acks(("127.0.0.1", self.ack_port))
        client = yield endpoints.connectProtocol(
            endpoints.TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.mes_port), MesClient())
        # Warm-up: connections up, first queries done.
        keys = yield self.send_at_rate(client, 100, 1)
        yield self.wait_arrived(keys, 30)

        for rate in self.args.rates:
            yield threads.deferToThread(settle_disk, self.dsn)
            # The bench process's own garbage collections (its dicts of times and the
            # simulator's record grow by the thousand) would stall its reading of what arrives
            # and show up as forwarding latency: none during the measured run.
            gc.collect()
            gc.disable()
            service_cpu, bench_cpu, begun = cpu_of(self.service), own_cpu(), time.perf_counter()
            keys = yield self.send_at_rate(client, rate, self.args.seconds)
            yield self.wait_arrived(keys, 60)
            gc.enable()
            service_cpu, bench_cpu = cpu_of(self.service) - service_cpu, own_cpu() - bench_cpu
            took = time.perf_counter() - begun
            sent = int(rate * self.args.seconds)
            latencies = [(self.arrived_at[k] - self.sent_at[k]) * 1000 for k in keys]
            ordered = sorted(latencies)
            print(f"latency MES-in -> 고기원-in at {rate:,.0f} telegrams/s ({len(keys)} forwarded of "
                  f"{sent} sent in {self.args.seconds:.0f} s): "
                  f"p50 {statistics.median(latencies):.1f} ms, p99 {ordered[int(len(ordered) * 0.99)]:.1f} ms, "
                  f"max {ordered[-1]:.1f} ms", flush=True)
            # Where the outbox row was when the telegram reached 고기원: live forwarding sends
            # from the journal, before the PostgreSQL transaction that writes the row.
            committed = self.committed_at(keys)
            early = sum(1 for k, at in committed.items() if self.arrived_wall[k] < at)
            health = self.health()
            writes = health.get("journal_writes", {})
            print(f"    {early * 100 / max(len(committed), 1):.0f}% reached 고기원 before their outbox transaction "
                  f"began; journal write (O_DSYNC) (last {writes.get('count')} batches) p50 {writes.get('p50_ms')} ms, "
                  f"p99 {writes.get('p99_ms')} ms, {writes.get('records_per_batch')} records/batch", flush=True)
            channels = health.get("gokiwon", {}).get("channels", {})
            print("    ACK round trip (ccl-mes send -> 고기원's ACK back) ms p50/p99/max: " + ", ".join(
                f"{ch} {(c.get('ack_rtt_ms') or {}).get('p50')}/{(c.get('ack_rtt_ms') or {}).get('p99')}/"
                f"{(c.get('ack_rtt_ms') or {}).get('max')} (live {c.get('live')}, resent {c.get('resent')})"
                for ch, c in channels.items()), flush=True)
            print(f"    CPU: ccl-mes {service_cpu:.2f} s = {service_cpu / sent * 1e6:.0f} us per telegram received "
                  f"({service_cpu / took * 100:.0f}% of a core); this bench process (MES client + 고기원 "
                  f"simulator) {bench_cpu / took * 100:.0f}% of a core", flush=True)

        # Outage: 고기원 goes away, the MES keeps sending.
        yield self.sim.stop()
        keys = yield self.send_at_rate(client, self.args.outage_rate, self.args.outage)
        while client.acks < self.seq:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        while self.pending() < len(keys):  # everything is in the outbox, waiting
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        backlog = self.pending()
        # 고기원 comes back: the clock starts when the simulator listens again, and stops
        # when the last backlog entry has arrived at it (the reconnect is part of it).
        service_cpu = cpu_of(self.service)
        back = time.perf_counter()
        yield self.sim.listen(ports)
        yield self.wait_arrived(keys, 600)
        arrived = time.perf_counter() - back
        first = min(self.arrived_at[k] for k in keys)
        last = max(self.arrived_at[k] for k in keys)
        # Each channel reconnects on its own: the slowest one's first arrival ends "reconnect".
        reconnected = max(min(self.arrived_at[k] for k in keys if k[0] == tc) for tc in FORWARDED)
        while self.pending():
            yield task.deferLater(self.reactor, 0.01, lambda: None)
        settled = time.perf_counter() - back
        service_cpu = cpu_of(self.service) - service_cpu
        in_order = all(
            [k for k in keys if k[0] == tc] == sorted((k for k in keys if k[0] == tc), key=self.arrived_at.get)
            for tc in FORWARDED)
        print(f"drain after a {self.args.outage:.0f} s outage at {self.args.outage_rate:,.0f} telegrams/s "
              f"(backlog {backlog} entries), timed from 고기원 listening again: "
              f"DRAINED (last backlog entry at 고기원) in {arrived:.2f} s; first entry arrived after "
              f"{first - back:.2f} s, every channel's first after {reconnected - back:.2f} s (reconnect), "
              f"sending from the first to the last {last - first:.2f} s "
              f"({backlog / max(last - first, 1e-6):,.0f} entries/s); all marked delivered in PostgreSQL "
              f"{settled:.2f} s after 고기원 came back; ccl-mes CPU {service_cpu / backlog * 1e6:.0f} us per "
              f"entry; in order per channel: {in_order}", flush=True)
        client.transport.loseConnection()
        yield self.sim.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 1000.0], help="telegrams/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds 고기원 is away")
    parser.add_argument("--outage-rate", type=float, default=100.0, help="telegrams/s sent during the outage")
    parser.add_argument("--window", type=int, help="experiment: [gokiwon] window (default: the configured one)")
    parser.add_argument("--service-log", help="keep a copy of the ccl-mes log here")
    parser.add_argument("--interval", type=float, help="experiment: override the MES writer's WRITE_INTERVAL (s)")
    args = parser.parse_args()

    bench = None
    try:
        bench = MesBench("ccl-bench-fwd-")
        dsn = bench.dsn
        mes_port, status_port, ack_port = free_port(), free_port(), free_port()
        ports = {channel: free_port() for channel in LAYOUTS.channels}
        settings = dict(CCL_MES_LISTEN=f"tcp:{mes_port}:interface=127.0.0.1",
                        CCL_MES_STATUS_LISTEN=f"tcp:{status_port}:interface=127.0.0.1",
                        CCL_MES_ACK_LISTEN=f"tcp:{ack_port}:interface=127.0.0.1", CCL_GOKIWON_HOST="127.0.0.1",
                        **{f"CCL_GOKIWON_{channel.upper()}_PORT": str(port) for channel, port in ports.items()})
        if args.window:
            settings["CCL_GOKIWON_WINDOW"] = str(args.window)
        boot = "" if args.interval is None else \
            f"import ccl.adapters.mes.service as s; s.WRITE_INTERVAL = {args.interval!r}; "
        service = bench.start(mes_port, settings, boot=boot)
        print(f"ccl-mes pid {service.pid}; journal fsync ON, PostgreSQL fsync on; {os.cpu_count()} CPUs; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; forwarding defaults (window 16, "
              f"drain_rate 5000/s per channel, retry_max 2 s); MES writer interval "
              f"{'default' if args.interval is None else args.interval}", flush=True)

        def go(reactor):
            bench = Run(reactor, args, mes_port, ack_port, dsn, service.pid, status_port)

            @defer.inlineCallbacks
            def both():
                yield bench.sim.listen(ports)
                yield bench.main(ports)
            return both()

        task.react(go)
    except SystemExit as done:
        if done.code not in (None, 0):
            print(done.code)
        return 0 if done.code in (None, 0) else 1
    finally:
        if bench is not None:
            bench.close(keep_log=args.service_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
