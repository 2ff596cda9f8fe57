"""Interpreter settings for the long-running, high-rate services (MES, ingestion)."""

from __future__ import annotations

import gc
import sys

#: Allocations between young-generation collections (CPython's default is 700).
YOUNG_COLLECTION_EVERY = 20_000


def tune_interpreter() -> None:
    """Call once the service is built, before it takes traffic.

    Measured on the MES path (bench/mes_ingest.py): with CPython's default thresholds the
    cyclic garbage collector ran so often at 10,000 telegrams/s that it took about a fifth of
    the CPU, and its full collections walked every object start-up had made (the imported
    modules, the layouts) in pauses of 70-120 ms, each one an ACK delay. Almost everything a
    telegram allocates is freed by reference counting anyway. So: what exists after start-up is
    frozen out of collection for good, and the young generation is collected every 20,000
    allocations instead of every 700 (the older ones keep their ratios).

    The switch interval: a worker thread formatting a big COPY batch must hand the GIL back
    to the reactor thread (ACKs, replies) within a millisecond, not the default five.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)
    sys.setswitchinterval(0.001)
