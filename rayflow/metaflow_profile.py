"""`profile`: time a block of code (Metaflow's `from metaflow import profile`).

    with profile("load data"):             # prints "PROFILE: load data starting", then
        df = load()                        # "PROFILE: load data completed in 812ms"
    times = {}
    with profile("train", stats_dict=times):   # prints nothing; adds the milliseconds to
        fit()                                  # times["train"]

The time is counted in whole milliseconds. A block that raises records nothing, as in
Metaflow.
"""

from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def profile(label: str, stats_dict: dict | None = None):
    if stats_dict is None:
        print(f"PROFILE: {label} starting")
    start = time.time()
    yield
    took = int((time.time() - start) * 1000)
    if stats_dict is None:
        print(f"PROFILE: {label} completed in {took}ms")
    else:
        stats_dict[label] = stats_dict.get(label, 0) + took
