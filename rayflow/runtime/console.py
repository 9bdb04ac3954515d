"""A task's console lines, shown in order: `[run/step/task] line`, as Metaflow prints them.

Metaflow's runtime reads each task's output until its process ends, before it starts the
tasks after it, so a task's lines never come after those of a task that follows it, and its
stdout and stderr lines come in the order it wrote them. Ray forwards a worker's output to the
driver a moment late, stdout and stderr each on its own, and workers each on their own: a
join's lines could come before those of the split it joins, and a task's stderr lines before
the stdout lines it wrote first.

So a task's console copy is held (`ConsoleHold`, in the worker) while the task is young, and
goes back to the driver with its outcome (`TaskOutcome.console`: (stream, text) pieces, in the
order written), where the run loop shows it (`show`) before it hands the task's values on: in
order, and before anything a later task prints. A task still running LIVE_AFTER_S after its
first line, or holding more than HOLD_BYTES, goes live: what it held is written out, then
each line as it is written, through Ray's forwarding, so a long step's progress shows as it
happens (those lines may then reach the console a moment after a quick next task's).
"""

from __future__ import annotations

import sys
import threading
import time

LIVE_AFTER_S = 2.0
HOLD_BYTES = 64 << 10
_POLL_S = 0.25


class ConsoleHold:
    """What one task's two Tees would write to the console, held until the task ends or
    goes live."""

    def __init__(self):
        self.pieces: list[tuple[int, str]] = []  # (0 stdout / 1 stderr, text) as written
        self.size = 0
        self.live = False
        self.reals: list = [None, None]
        self.first_line: float | None = None  # when the task first wrote (monotonic)
        self.lock = threading.Lock()
        _watch(self)

    def emit(self, index: int, text: str, real) -> None:
        with self.lock:
            if self.live:
                _write(real, text)
                return
            self.reals[index] = real
            if self.first_line is None:
                self.first_line = time.monotonic()
            self.pieces.append((index, text))
            self.size += len(text)
            if self.size > HOLD_BYTES:
                self._go_live()

    def go_live(self) -> None:
        with self.lock:
            if not self.live:
                self._go_live()

    def _go_live(self) -> None:
        self.live = True
        pieces, self.pieces = self.pieces, []
        for index, text in pieces:
            _write(self.reals[index], text)
        for real in self.reals:
            if real is not None:
                try:
                    real.flush()
                except (ValueError, OSError):
                    pass

    def take(self) -> tuple:
        """At the task's end: the pieces still held (none once live)."""
        with self.lock:
            _CURRENT[0] = None if _CURRENT[0] is self else _CURRENT[0]
            pieces, self.pieces = self.pieces, []
            self.live = True  # anything written after the task goes straight out
            return tuple(pieces)


def _write(real, text: str) -> None:
    if real is not None:
        try:
            real.write(text)
        except (ValueError, OSError):
            pass


_CURRENT: list = [None]  # the hold of the task this process runs now
_WATCHER: list = [None]


def _watch(hold: ConsoleHold) -> None:
    """Make `hold` the running task's: one thread per process lets it go live LIVE_AFTER_S
    after its first line."""
    _CURRENT[0] = hold
    if _WATCHER[0] is None:
        thread = threading.Thread(target=_watcher, name="rayflow-console", daemon=True)
        _WATCHER[0] = thread
        thread.start()


def _watcher() -> None:
    while True:
        time.sleep(_POLL_S)
        hold = _CURRENT[0]
        first = hold.first_line if hold is not None else None
        if first is not None and not hold.live and time.monotonic() - first >= LIVE_AFTER_S:
            hold.go_live()


def show(console, out=None, err=None) -> None:
    """Write a task's held pieces to this process's stdout and stderr, line by line (each
    with its prefix, as Ray's forwarding writes them), in the order the task wrote them."""
    if not console:
        return
    streams = (out or sys.stdout, err or sys.stderr)
    run: list[str] = []
    index = console[0][0]
    for piece_index, text in (*console, (-1, "")):
        if piece_index != index:
            for line in "".join(run).splitlines(keepends=True):
                streams[index].write(line if line.endswith("\n") else line + "\n")
            streams[index].flush()
            run, index = [], piece_index
        run.append(text)
