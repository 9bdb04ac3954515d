"""The stored form of a task's log: every line with the time it was written.

A log is kept as text, one line per line the step wrote, each prefixed with the moment it
started: `[rflog|<seconds since the epoch>]<the line>`. `Task.stdout` gives the lines back
without the prefix, `Task.loglines` with their times (Metaflow's API). A log written without
prefixes (by an older rayflow) reads as lines without a time.

It must never read or write storage, and never import ray.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime

_PREFIX = re.compile(r"^\[rflog\|(\d+(?:\.\d*)?)\]")


def encode_timed_log(lines: Iterable[tuple[float, str]]) -> str:
    """`(time, line)` pairs (lines without their newline) as stored text."""
    return "".join(f"[rflog|{stamp:.6f}]{line}\n" for stamp, line in lines)


def decode_timed_log(text: str) -> Iterator[tuple[datetime | None, str]]:
    """(time or None, line) for each line of a stored log."""
    for raw in text.splitlines():
        m = _PREFIX.match(raw)
        if m is None:
            yield None, raw
        else:
            yield datetime.fromtimestamp(float(m.group(1))), raw[m.end():]
