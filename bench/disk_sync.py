"""What the journal's disk allows: fdatasync latency for appends, overwrites and parallel syncs.

    .venv/bin/python bench/disk_sync.py [--dir var] [--seconds 8] [--rate 1000]

The MES ACK waits for the journal's write + fdatasync, so the disk's own sync latency is a
floor under the ACK latency. This measures, in a scratch file under ``--dir`` (put it on the
disk that holds ``[paths] var``):

1. appending vs overwriting a zero-filled (preallocated) file, one 150-byte record a sync;
2. a stream of ``--rate`` records/s, group-committed by 1, 2 or 3 writer threads (ordered
   writes, overlapping fdatasyncs): the latency from a record's arrival to its sync.

Nothing here is part of the service; it tells whether preallocated segments or pipelined
journal writes could lower the ACK tail on a given disk (on the reference machine: no).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import threading
import time


def percentiles(values: list[float]) -> str:
    values = sorted(v * 1000 for v in values)
    return (f"p50 {values[len(values) // 2]:.2f} ms, p99 {values[int(len(values) * 0.99)]:.2f} ms, "
            f"max {values[-1]:.2f} ms")


def single_syncs(path: str, preallocated: bool, count: int = 1500, size: int = 150) -> str:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o600)
    try:
        if preallocated:
            os.write(fd, b"\0" * (count * size + 4096))
            os.fsync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        took = []
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * size)
            os.fdatasync(fd)
            took.append(time.perf_counter() - started)
            time.sleep(0.001)
        return percentiles(took)
    finally:
        os.close(fd)
        os.unlink(path)


def stream(path: str, workers: int, seconds: float, rate: float) -> str:
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_APPEND, 0o600)
    pending: collections.deque[float] = collections.deque()
    ready = threading.Condition()
    ordered = threading.Lock()
    latencies: list[float] = []
    stopping = False

    def writer() -> None:
        while True:
            with ready:
                while not pending and not stopping:
                    ready.wait()
                if stopping and not pending:
                    return
                batch = list(pending)
                pending.clear()
                with ordered:
                    os.write(fd, b"x" * (150 * len(batch)))
            os.fdatasync(fd)
            done = time.perf_counter()
            latencies.extend(done - arrived for arrived in batch)

    threads = [threading.Thread(target=writer) for _ in range(workers)]
    for thread in threads:
        thread.start()
    begun = time.perf_counter()
    sent = 0
    while time.perf_counter() - begun < seconds:
        due = int((time.perf_counter() - begun) * rate)
        if due > sent:
            with ready:
                now = time.perf_counter()
                pending.extend([now] * (due - sent))
                ready.notify()
            sent = due
        time.sleep(0.0005)
    with ready:
        stopping = True
        ready.notify_all()
    for thread in threads:
        thread.join()
    os.close(fd)
    os.unlink(path)
    return percentiles(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var", help="a folder on the disk to measure (default: var)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(tempfile.mkdtemp(prefix="disk-sync-", dir=args.dir), "scratch")
    try:
        print(f"disk under {os.path.abspath(args.dir)}; load average {os.getloadavg()[0]:.1f}")
        print(f"one record per fdatasync, appending:            {single_syncs(path, False)}")
        print(f"one record per fdatasync, overwriting zeros:    {single_syncs(path, True)}")
        for workers in (1, 2, 3):
            print(f"{args.rate:,.0f} records/s, {workers} writer thread(s), arrival to sync: "
                  f"{stream(path, workers, args.seconds, args.rate)}")
    finally:
        os.rmdir(os.path.dirname(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
