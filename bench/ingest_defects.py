"""Benchmark of ccl-defects: single posts at concurrency 16 and batches of 100 and 1,000.

Starts its own PostgreSQL cluster (fsync on) and the service as a subprocess (`python -m twisted
ccl-defects`). Each defect carries a fresh event_id, so the de-duplication index works too.

    CCL_VENV=/work/venv-x $CCL_VENV/bin/python bench/ingest_defects.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid

from _service import Bench, percentile, run_clients

TYPES = ["scratch", "dent", "stain", "pinhole", "coating_defect", "edge_crack", "roll_mark", "other"]
#: The first 8 hex digits of every event_id, replaced by the request number when it is sent:
#: bodies are made once, yet every request stores fresh defects (none is a repeat).
MARK = "XXXXXXXX"
TARGET = "targets: >= 1,000 single posts/s; >= 50,000 defects/s in batches of 1,000"


def defect(rng: random.Random, with_coil: bool = True) -> dict:
    item = {"defect_type": rng.choice(TYPES), "confidence_score": round(rng.random(), 3),
            "defect_position_x": rng.randrange(4096), "defect_position_y": rng.randrange(1000),
            "defect_size_width": rng.randrange(1, 200), "defect_size_height": rng.randrange(1, 200),
            "defect_position_meter": round(rng.uniform(0, 3000), 2),
            "event_id": MARK + str(uuid.UUID(int=rng.getrandbits(128), version=4))[8:]}
    if with_coil:
        item["coil_number"] = f"BENCH-{rng.randrange(50)}"
    return item


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case")
    parser.add_argument("--processes", type=int, default=2, help="client processes for the single posts")
    parser.add_argument("--cases", default="single,100,1000", help="which cases to run (single, 100, 1000)")
    args = parser.parse_args()
    chosen = args.cases.split(",")

    bench = Bench("ccl-defects")
    try:
        print(f"ccl-defects benchmark; server RSS after start: {bench.rss_now() / 2**20:.0f} MB")
        print(f"{'case':<24} {'conc':>4} {'req/s':>8} {'defects/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
              f" {'peak RSS MB':>11} {'errors':>6} {'CPU ms/req':>10} {'PG ms/req':>9} {'client ms':>9} {'stored':>8}")
        cases = [("single", 16, 1, args.processes), ("batch of 100", 4, 100, 1), ("batch of 1,000", 4, 1000, 1)]
        for name, concurrency, size, processes in cases:
            if ("single" if size == 1 else str(size)) not in chosen:
                continue
            rng = random.Random(size)
            # Bodies are made before measuring, so the client stays light.
            count = 1000 if size == 1 else 20
            if size == 1:
                bodies = [json.dumps(defect(rng)).encode() for _ in range(count)]
                path = "/defect/single"
            else:
                bodies = [json.dumps({"coil_number": f"BENCH-{i % 50}", "batch_info": {"frame": i},
                                      "defects": [defect(rng, with_coil=False) for _ in range(size)]}).encode()
                          for i in range(count)]
                path = "/defect/batch"

            def request(i, bodies=bodies, path=path):
                body = bodies[i % len(bodies)].replace(MARK.encode(), b"%08x" % i)
                return "POST", path, body, {"Content-Type": "application/json"}

            bench.reset_peak()
            stored_before = bench.count("defect_detections")
            before = bench.cpu_snapshot()
            latencies, failures, seconds = run_clients(bench.port, concurrency, request, args.seconds,
                                                       processes=processes)
            rate = len(latencies) / seconds
            stored = bench.count("defect_detections") - stored_before
            cpu, pg_cpu, client_cpu = bench.cpu_per_request(before, len(latencies))
            print(f"{name:<24} {concurrency:>4} {rate:>8.1f} {rate * size:>10.0f} {percentile(latencies, 50) * 1000:>7.1f}"
                  f" {percentile(latencies, 99) * 1000:>7.1f} {bench.peak_rss / 2**20:>11.0f} {len(failures):>6}"
                  f" {cpu * 1000:>10.2f} {pg_cpu * 1000:>9.2f} {client_cpu * 1000:>9.2f} {stored:>8}")
            if failures:
                print(f"     first failures: {failures[:3]}")
        print("stored: rows added to defect_detections during the case, warm-up included (every request"
              " is fresh, so it is at least defects/s x seconds)")
        print(TARGET)
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
