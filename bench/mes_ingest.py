"""Benchmark of the MES receive path: telegrams/s ACKed, ACK latency, time until in PostgreSQL.

Starts its own throw-away PostgreSQL cluster (fsync on, as in production) and the MES
service as a real process (``twistd -n ccl-mes``, journal fsync ON), then:

1. throughput: several connections send a production-like mix of telegrams as fast as
   the service ACKs them (a window of un-ACKed telegrams per connection);
2. latency: once the burst of (1) is on disk (CHECKPOINT + sync), one connection sends
   1,000 telegrams/s for a while; the time from the write of each telegram to the arrival
   of its ACK is measured (p50, p99, max);
3. how long after the last ACK every telegram is in PostgreSQL.

Run: CCL_VENV=/work/venv-x .venv/bin/python bench/mes_ingest.py [--total N] [--connections N]
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

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, endpoints, protocol, task, threads  # noqa: E402

from _mes import MesBench, settle_disk  # noqa: E402
from ccl.adapters.storage.localdb import free_port  # noqa: E402
from ccl.domain.production import production_run  # noqa: E402
from ccl.domain.telegrams import PLANT_TZ, encode, load_layouts  # noqa: E402

LAYOUTS = load_layouts()
ACK_LENGTH = LAYOUTS.by_name("ack").length
SEQ_SPAN = (LAYOUTS.header_length + 4, LAYOUTS.header_length + 10)  # acked_sequence_no in a reply
RESULT_SPAN = (LAYOUTS.header_length + 10, LAYOUTS.header_length + 12)


def telegrams(line_code: str, count: int, seed: int) -> list[bytes]:
    """A production-like mix (mostly line speed, schedules/WPD/cuts per coil), run 100x faster so
    that many coils pass; sequence numbers 1..count."""
    sent_at = datetime.datetime.now(PLANT_TZ).replace(microsecond=0)
    out = []
    events = (e for e in production_run(seed) if e.tc_code != "4999")
    for seq, event in zip(range(1, count + 1), events):
        out.append(encode(LAYOUTS, event.tc_code, event.values, line_code=line_code, sequence_no=seq,
                          sent_at=sent_at + datetime.timedelta(seconds=event.at)))
    return out


class Sender(protocol.Protocol):
    """Writes telegrams keeping at most ``window`` un-ACKed; records ACK arrival times."""

    def __init__(self, items: list[bytes], window: int):
        self.items = items
        self.window = window
        self.next = 0
        self.acked = 0
        self.naks = 0
        self.buffer = b""
        self.sent_at: list[float] = [0.0] * len(items)
        self.ack_at: list[float] = [0.0] * len(items)
        self.done = defer.Deferred()

    def connectionMade(self):  # noqa: N802
        self.transport.setTcpNoDelay(True)

    def pump(self, limit: int | None = None) -> None:
        end = min(len(self.items), self.acked + self.window, limit if limit is not None else len(self.items))
        if end > self.next:
            now = time.perf_counter()
            for i in range(self.next, end):
                self.sent_at[i] = now
            self.transport.write(b"".join(self.items[self.next:end]))
            self.next = end

    def dataReceived(self, data):  # noqa: N802
        self.buffer += data
        now = time.perf_counter()
        whole = len(self.buffer) // ACK_LENGTH * ACK_LENGTH
        for at in range(0, whole, ACK_LENGTH):
            reply = self.buffer[at:at + ACK_LENGTH]
            if reply[RESULT_SPAN[0]:RESULT_SPAN[1]] != b"00":
                self.naks += 1
            seq = int(reply[SEQ_SPAN[0]:SEQ_SPAN[1]])
            self.ack_at[seq - 1] = now
            self.acked += 1
        self.buffer = self.buffer[whole:]
        if self.acked >= len(self.items):
            if not self.done.called:
                self.done.callback(None)
        elif self.window < len(self.items):
            self.pump()


def connect(reactor, port: int, sender: Sender) -> defer.Deferred:
    return endpoints.connectProtocol(endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), sender)


def stored(dsn: str) -> int:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM tc_4000_schedule) + (SELECT count(*) FROM tc_4001_cut) + "
                       "(SELECT count(*) FROM tc_4002_wpd) + (SELECT count(*) FROM tc_4003_speed)")
        return cursor.fetchone()[0]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@defer.inlineCallbacks
def run(reactor, args, port: int, dsn: str, service_pid: int):
    # 1. Throughput with several connections at full speed.
    per = args.total // args.connections
    batches = [telegrams(f"CC{c:02d}", per, seed=c + 1) for c in range(args.connections)]
    mix = {}
    for items in batches:
        for raw in items:
            mix[raw[:4].decode()] = mix.get(raw[:4].decode(), 0) + 1
    senders = [Sender(items, args.window) for items in batches]
    yield defer.gatherResults([connect(reactor, port, s) for s in senders])
    started = time.perf_counter()
    cpu_before = cpu_seconds(service_pid)
    for sender in senders:
        sender.pump()
    yield defer.gatherResults([s.done for s in senders])
    elapsed = time.perf_counter() - started
    cpu_used = cpu_seconds(service_pid) - cpu_before
    total = per * args.connections
    naks = sum(s.naks for s in senders)
    print(f"throughput: {total} telegrams over {args.connections} connections ACKed in {elapsed:.2f} s "
          f"= {total / elapsed:,.0f} telegrams/s (NAKs: {naks}; mix {dict(sorted(mix.items()))})")
    acked_at = time.perf_counter()
    while stored(dsn) < total:
        yield task.deferLater(reactor, 0.05, lambda: None)
    print(f"service CPU while receiving: {cpu_used:.2f} s = {cpu_used / total * 1e6:.0f} us per telegram "
          f"(receive, journal, ACK and most of the PostgreSQL writing; the machine's load average "
          f"was {os.getloadavg()[0]:.1f})")
    print(f"in PostgreSQL: all {total} stored {time.perf_counter() - acked_at:.2f} s after the last ACK "
          f"({total / (time.perf_counter() - started):,.0f} telegrams/s end to end)")
    for sender in senders:
        sender.transport.loseConnection()

    # 2. ACK latency at a steady rate. First the burst above is put on disk (a checkpoint and
    # a sync): its writeback would otherwise share the disk with the journal's fsyncs and
    # measure the aftermath of a burst ten times the rate, not a steady 1,000/s.
    yield threads.deferToThread(settle_disk, dsn)
    count = int(args.rate * args.seconds)
    items = telegrams("LATY", count, seed=99)
    # The client's own garbage collections would stall its reading of ACKs and show up as
    # server latency: none during the measured run.
    gc.collect()
    gc.disable()
    sender = Sender(items, window=count)
    yield connect(reactor, port, sender)
    tick = 0.005
    per_tick = args.rate * tick
    begun = time.perf_counter()

    def send_due():
        due = min(count, int((time.perf_counter() - begun) / tick * per_tick) + 1)
        sender.pump(limit=due)

    sending = task.LoopingCall(send_due)
    sending.start(tick)
    yield sender.done
    sending.stop()
    took = time.perf_counter() - begun
    gc.enable()
    latencies = [(a - s) * 1000 for s, a in zip(sender.sent_at, sender.ack_at)]
    print(f"latency at {args.rate:,.0f} telegrams/s ({count} telegrams in {took:.1f} s, NAKs: {sender.naks}): "
          f"ACK p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 99):.2f} ms, "
          f"max {max(latencies):.2f} ms")
    sender.transport.loseConnection()
    import json
    import urllib.request

    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{args.status_port}/health").read())
    writes = health["journal_writes"]
    print(f"journal write (O_DSYNC) during the latency run (last {writes['count']} batches): p50 "
          f"{writes['p50_ms']} ms, p99 {writes['p99_ms']} ms, max {writes['max_ms']} ms, "
          f"{writes['records_per_batch']} records per batch")
    grand = total + count
    while stored(dsn) < grand:
        yield task.deferLater(reactor, 0.05, lambda: None)
    print(f"in PostgreSQL: all {grand} telegrams, none twice: {stored(dsn) == grand}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=60000, help="telegrams in the throughput run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=3000, help="un-ACKed telegrams per connection")
    parser.add_argument("--rate", type=float, default=1000.0, help="telegrams/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--no-fsync", action="store_true", help="journal fsync off (comparison only)")
    args = parser.parse_args()

    bench = None
    try:
        bench = MesBench()
        dsn = bench.dsn
        port, status = free_port(), free_port()
        args.status_port = status
        profile = ("--profile", os.environ["CCL_BENCH_PROFILE"], "--profiler", "cprofile", "--savestats") \
            if os.environ.get("CCL_BENCH_PROFILE") else ()
        service = bench.start(port, dict(
            CCL_MES_LISTEN=f"tcp:{port}:interface=127.0.0.1",
            CCL_MES_STATUS_LISTEN=f"tcp:{status}:interface=127.0.0.1",
            CCL_MES_JOURNAL_FSYNC="false" if args.no_fsync else "true",
            # Forwarding has its own bench (forward_latency.py); here it would take production ports.
            CCL_GOKIWON_ENABLED="false"), twistd_args=profile)
        print(f"MES service pid {service.pid} on port {port}; journal fsync "
              f"{'OFF' if args.no_fsync else 'ON'}; PostgreSQL fsync on; {os.cpu_count()} CPUs")
        task.react(lambda reactor: run(reactor, args, port, dsn, service.pid))
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        if bench is not None:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
