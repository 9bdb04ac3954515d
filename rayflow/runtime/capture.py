"""The stdout/stderr tee of a task, in the worker: while a step runs, `sys.stdout` and
`sys.stderr` are `Tee`s that keep every line with the time it was written (the task's log in
the datastore) and copy it to the real stream with the task's `[step/task] ` prefix (what Ray
forwards to the driver's console).
"""

from __future__ import annotations

import io
import sys
import time

from ..datastore.logs import encode_timed_log


class Tee(io.TextIOBase):
    """A task's sys.stdout or sys.stderr: keeps every line with the time it was written (for
    the datastore) and copies it to the real stream with a [step/task] prefix. It is a text
    stream like the real one, with an `encoding` and a binary `buffer`."""

    def __init__(self, real, prefix: str, sink=None):
        self.real = real
        self.prefix = prefix
        self._sink = sink  # also gets every piece of text, as it is written
        self._lines: list[list] = []   # [time, text] per line, the last one maybe unfinished
        self._at_line_start = True
        self._buffer = None

    @property
    def buffer(self) -> "TeeBuffer":
        if self._buffer is None:  # made when asked for: most tasks never write bytes
            self._buffer = TeeBuffer(self)
        return self._buffer

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "replace"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", errors="replace")
        now = time.time()
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                self._lines.append([now, piece])
                out.append(self.prefix)
            else:
                self._lines[-1][1] += piece
            out.append(piece)
            self._at_line_start = piece.endswith(("\n", "\r"))
            if self._sink is not None:
                self._sink(piece)
        if self.real is not None and out:
            try:
                self.real.write("".join(out))
            except (ValueError, OSError):
                pass
        return len(text)

    def flush(self) -> None:
        if self.real is not None and self._lines:
            try:
                self.real.flush()
            except (ValueError, OSError):
                pass

    @property
    def printed(self) -> int:
        """Lines copied to the real stream, each with the task's prefix."""
        return len(self._lines) if self.real is not None else 0

    def getvalue(self) -> str:
        return "".join(text for _, text in self._lines)

    def stored(self) -> str:
        """The log as the datastore keeps it: every line with its time."""
        if not self._lines:
            return ""
        return encode_timed_log((stamp, text.rstrip("\r\n")) for stamp, text in self._lines)

    def isatty(self) -> bool:
        return False


class TeeBuffer(io.RawIOBase):
    """`sys.stdout.buffer` of a task: bytes written here are the same log, decoded."""

    def __init__(self, tee: Tee):
        self._tee = tee

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._tee.write(bytes(data).decode("utf-8", errors="replace"))
        return len(data)

    def flush(self) -> None:
        self._tee.flush()


class captured_output:
    """sys.stdout and sys.stderr as `Tee`s for the block (a class, not a generator: it runs
    twice for every task of a 100,000-split foreach)."""

    def __init__(self, prefix: str, sink=None):
        self.prefix, self.sink = prefix, sink

    def __enter__(self):
        sink = self.sink
        self.old = sys.stdout, sys.stderr
        out = Tee(self.old[0], self.prefix, sink and (lambda text: sink("stdout", text)))
        err = Tee(self.old[1], self.prefix, sink and (lambda text: sink("stderr", text)))
        sys.stdout, sys.stderr = self.tees = out, err
        return out, err

    def __exit__(self, *exc) -> None:
        for tee in self.tees:
            tee.flush()
        sys.stdout, sys.stderr = self.old
