"""What a task records of the process it ran in, read cheaply: a split of a 1,000,000-split
foreach cannot afford a system call for each (getpid and getrusage are, and a loaded machine
makes them slow)."""

from __future__ import annotations

import os
import sys
import time

_PID: list = []  # this process's id (getpid is a system call; a fork forgets it)


def process_id() -> int:
    if not _PID:
        _PID.append(os.getpid())
    return _PID[0]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_PID.clear)

_PEAK = [0.0, 0]  # (when read, the process's peak RSS then)
PEAK_RSS_FRESH_S = 0.01


def peak_rss() -> int:
    """The process's peak resident memory so far. It only grows, and getrusage costs a
    system call that a loaded machine makes slow (a sixth of a trivial split's time,
    measured): read at most every PEAK_RSS_FRESH_S, a split of a batch may report the
    peak as it was a few milliseconds before it ended."""
    now = time.monotonic()
    if now - _PEAK[0] < PEAK_RSS_FRESH_S:
        return _PEAK[1]
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError, ValueError):
        peak = 0
    _PEAK[0], _PEAK[1] = now, peak
    return peak
