"""`parallel_map` and `parallel_imap_unordered`: a function over items in forked processes
(Metaflow's `from metaflow import parallel_map`), for CPU-bound work inside one step.

    squares = parallel_map(lambda x: x * x, range(100), max_parallel=8)

Each item runs in a child forked from the calling process, so the function may be a lambda or a
closure and sees the caller's memory as it was at the fork; only its result travels back
(pickled, through a temporary file in `dir`, so there is no size limit). At most
`max_parallel` children (default: the CPU count) run at once. A child that raises prints its
traceback and the call raises `MulticoreException`, after stopping the children still running.
POSIX only (it forks).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

POLL_S = 0.01


class MulticoreException(Exception):
    """A child of parallel_map / parallel_imap_unordered failed."""


def _spawn(func: Callable, arg: Any, folder: str | None) -> tuple[int, str]:
    fd, out = tempfile.mkstemp(prefix="parallel_map_", dir=folder)
    os.close(fd)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid, out
    code = 1
    try:
        result = func(arg)
        with open(out, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no finally blocks or atexit handlers of the parent run in the child


def _stop(children: list[tuple[int, str]]) -> None:
    for pid, out in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        if os.path.exists(out):
            os.remove(out)


def _next_done(children: list[tuple[int, str]]) -> tuple[int, str, int]:
    """Wait for one of `children` to exit: its (pid, output file, exit status)."""
    while True:
        for pid, out in children:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return pid, out, os.waitstatus_to_exitcode(status)
        time.sleep(POLL_S)


def parallel_imap_unordered(func: Callable, iterable: Iterable, max_parallel: int | None = None,
                            dir: str | None = None) -> Iterator:
    """`func` of every item, each in its own forked process; results in the order they
    finish."""
    width = max_parallel or os.cpu_count() or 1
    items = iter(iterable)
    children = [_spawn(func, arg, dir) for arg in islice(items, width)]
    try:
        while children:
            pid, out, code = _next_done(children)
            children.remove((pid, out))
            if code != 0:
                os.remove(out)
                raise MulticoreException(
                    f"A parallel_map child (pid {pid}) failed with exit code {code}; its "
                    "traceback is printed above.")
            with open(out, "rb") as fh:
                result = pickle.load(fh)
            os.remove(out)
            children += [_spawn(func, arg, dir) for arg in islice(items, 1)]
            yield result
    finally:
        _stop(children)


def parallel_map(func: Callable, iterable: Iterable, max_parallel: int | None = None,
                 dir: str | None = None) -> list:
    """`func` of every item, each in its own forked process; results in the items' order."""
    def indexed(pair):
        return pair[0], func(pair[1])

    done = parallel_imap_unordered(indexed, enumerate(iterable), max_parallel, dir)
    return [result for _, result in sorted(done, key=lambda pair: pair[0])]
