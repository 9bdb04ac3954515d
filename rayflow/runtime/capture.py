"""The stdout/stderr tee of a task, in the worker: while a step runs, `sys.stdout` and
`sys.stderr` are `Tee`s that keep every line with the time it was written (the task's log in
the datastore) and copy it to the real stream with the task's `[run/step/task] ` prefix (what
Ray forwards to the driver's console; held first while the task is young, see console.py).

Output that bypasses sys.stdout (`os.system`, a subprocess, `os.write(1, ...)`, a C library's
printf) is caught at the file-descriptor level by `FdCapture`: while a batch runs, fds 1 and 2
point at unlinked temporary files, read back into the running task's `Tee`s (so into its log
and, prefixed, onto the console, through the fds the worker had) before each of its writes, by
a thread every POLL_S while it runs, and when it ends. A file, not a pipe: a subprocess that
writes more than a pipe holds can never block on a reader.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
import tempfile
import threading
import time
import weakref

from ..datastore.logs import encode_timed_log
from .console import ConsoleHold

TRUNCATED = "[TRUNCATED - MAXIMUM LOG FILE SIZE REACHED]\n"


class Tee(io.TextIOBase):
    """A task's sys.stdout or sys.stderr: keeps every line with the time it was written (for
    the datastore) and copies it to the real stream with a [run/step/task] prefix. It is a text
    stream like the real one, with an `encoding` and a binary `buffer`."""

    def __init__(self, real, prefix: str, sink=None, limit: int | None = None):
        self._buffer = None
        self.fdcap: FdCapture | None = None  # the batch's fd-level capture, read first
        self.fd_index = 0  # which of its fds is this stream's (0: fd 1, 1: fd 2)
        self.rearm(real, prefix, sink, limit, None)

    def rearm(self, real, prefix: str, sink, limit: int | None, hold) -> None:
        """Start a task's log afresh in this Tee: a batch's tasks reuse one pair of Tees
        (`captured_output.rearm`), each task's lines kept, prefixed and held as its own."""
        self.real = real
        self.prefix = prefix
        self._sink = sink  # also gets every piece of text, as it is written
        self._lines: list[list] = []   # [time, text] per line, the last one maybe unfinished
        self._at_line_start = True
        # run --max-log-size: the log keeps this many characters, then says it stopped (the
        # console still gets every line), as Metaflow's runtime truncates a task's log.
        self._room = limit
        self._unprinted = 0  # lines kept in the log only (log_only), not on the console
        self.hold = hold  # the task's ConsoleHold (console.py): the console copy waits there

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
        cap = self.fdcap
        if cap is None:
            return self.append(text)
        with cap.lock:  # what went to this stream's fd before this write comes first
            cap.drain(self.fd_index)
            return self.append(text)

    def append(self, text: str) -> int:
        now = time.time()
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_line_start:
                out.append(self.prefix)
            if self._room is None or self._keeps(piece, now):
                if self._at_line_start:
                    self._lines.append([now, piece])
                else:
                    self._lines[-1][1] += piece
            out.append(piece)
            self._at_line_start = piece.endswith(("\n", "\r"))
            if self._sink is not None:
                self._sink(piece)
        if self.real is not None and out:
            if self.hold is not None:
                self.hold.emit(self.fd_index, "".join(out), self.real)
            else:
                try:
                    self.real.write("".join(out))
                except (ValueError, OSError):
                    pass
        return len(text)

    def log_only(self, text: str) -> None:
        """Keep whole lines in the task's log without copying them to the console: the
        traceback of a task's last attempt, which the driver's error message shows once."""
        if not text:
            return
        if not text.endswith("\n"):
            text += "\n"
        real, self.real = self.real, None
        before = len(self._lines)
        try:
            if not self._at_line_start:
                self.append("\n")
            self.append(text)
        finally:
            self.real = real
        self._unprinted += len(self._lines) - before

    def _keeps(self, piece: str, now: float) -> bool:
        """Whether the log keeps `piece` within --max-log-size (the first piece beyond it
        leaves Metaflow's marker line instead, and nothing more is kept)."""
        if self._room < 0:
            return False
        self._room -= len(piece)
        if self._room >= 0:
            return True
        self._lines.append([now, TRUNCATED])
        return False

    def flush(self) -> None:
        if self.real is not None and self._lines:
            try:
                self.real.flush()
            except (ValueError, OSError):
                pass

    @property
    def printed(self) -> int:
        """Lines copied to the real stream, each with the task's prefix."""
        return len(self._lines) - self._unprinted if self.real is not None else 0

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
    twice for every task of a 100,000-split foreach); with `fdcap`, the fd-level output of the
    block goes to the same Tees. A batch's tasks use one, `rearm`ed for each: its two Tees
    are made once and started afresh per task (prefix, log, --max-log-size room, console
    hold), so a split does not pay for making them."""

    def __init__(self, prefix: str, sink=None, fdcap: FdCapture | None = None,
                 limit: int | None = None, hold: bool = False):
        self.fdcap, self.limit = fdcap, limit
        self.tees: tuple | None = None
        self.rearm(prefix, sink, hold)

    def rearm(self, prefix: str, sink=None, hold: bool = False) -> captured_output:
        """The same capture for the next task: its prefix, its sink and (with `hold`) its
        own ConsoleHold, in which its console copy waits for the task's end."""
        self.prefix, self.sink = prefix, sink
        self.hold = ConsoleHold() if hold else None
        return self

    def __enter__(self):
        sink, cap, limit = self.sink, self.fdcap, self.limit
        self.old = sys.stdout, sys.stderr
        real = cap.console if cap is not None else self.old
        out_sink = sink and (lambda text: sink("stdout", text))
        err_sink = sink and (lambda text: sink("stderr", text))
        if self.tees is None:
            out = Tee(real[0], self.prefix, out_sink, limit)
            err = Tee(real[1], self.prefix, err_sink, limit)
            err.fd_index = 1
            self.tees = out, err
        out, err = self.tees
        out.rearm(real[0], self.prefix, out_sink, limit, self.hold)
        err.rearm(real[1], self.prefix, err_sink, limit, self.hold)
        sys.stdout, sys.stderr = out, err
        if cap is not None:
            cap.attach(out, err)
        return out, err

    def __exit__(self, *exc) -> None:
        if self.fdcap is not None:
            self.fdcap.detach()
        for tee in self.tees:
            tee.flush()
        sys.stdout, sys.stderr = self.old


def _size(file: int) -> int:
    """The size of a spool file: its end, by lseek (a quarter of fstat's cost, which builds a
    stat result). The spool is opened O_APPEND and read with pread, so moving its offset
    changes nothing, for this process or for what shares the file."""
    return os.lseek(file, 0, os.SEEK_END)


class _FdSpool:
    """One captured fd: the unlinked file it points at while the batch runs, and how far it
    has been read."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = os.dup(fd)  # the fd as the worker had it: where the console copy goes
        self.file = _spool_file(fd)
        os.ftruncate(self.file, 0)
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read_new(self, chunk: int = 1 << 20):
        """The text written since the last call, in pieces of at most `chunk` bytes."""
        size = _size(self.file)
        return self._pieces(size, chunk) if size > self.offset else ()

    def _pieces(self, size: int, chunk: int):
        while size > self.offset:
            data = os.pread(self.file, min(chunk, size - self.offset), self.offset)
            if not data:
                break
            self.offset += len(data)
            text = self.decoder.decode(data)
            if text:
                yield text

    def empty(self) -> None:
        if self.offset >= FdCapture.TRUNCATE_AT:
            os.ftruncate(self.file, 0)
            self.offset = 0


class FdCapture:
    """fds 1 and 2 of this process, while a batch runs, captured into the running task's
    `Tee`s (see the module's docstring). Outside a task (between two), what they get is only
    copied to the console."""

    POLL_S = 0.1
    TRUNCATE_AT = 1 << 20

    def __init__(self):
        self.lock = threading.RLock()
        self.console: tuple = (None, None)
        self._spools: list[_FdSpool] = []
        self._tees: tuple | None = None

    def __enter__(self) -> FdCapture:
        _LIVE.add(self)
        _flush_stdio()
        try:
            for fd in (1, 2):
                spool = _FdSpool(fd)
                self._spools.append(spool)
                os.dup2(spool.file, fd)
        except OSError:  # a closed fd, no temp space: Python-level capture only
            self._restore()
            return self
        self.console = tuple(open(s.saved, "w", encoding="utf-8", errors="replace",  # noqa: SIM115
                                  buffering=1, closefd=False) for s in self._spools)
        _ACTIVE.add(self)
        _start_poller()
        return self

    def __exit__(self, *exc) -> None:
        with self.lock:  # the poller drains a capture only while it is in _ACTIVE
            _ACTIVE.discard(self)
        _flush_stdio()
        with self.lock:
            self.drain()
            self._restore()

    @property
    def active(self) -> bool:
        return bool(self.console[0])

    def attach(self, out: Tee, err: Tee) -> None:
        if not self.active:
            return
        with self.lock:
            self.drain()  # what came before the task is not the task's
            self._tees = (out, err)
            out.fdcap = err.fdcap = self
            err.fd_index = 1

    def detach(self) -> None:
        if not self.active:
            return
        _flush_stdio()
        with self.lock:
            self.drain()
            if self._tees is not None:
                for tee in self._tees:
                    tee.fdcap = None
            self._tees = None
            for spool in self._spools:
                spool.empty()

    def drain(self, only: int | None = None) -> None:
        """Hand what the fds (or fd `only`: 0 or 1) got since the last call to the task's
        Tees (the caller holds `lock`)."""
        for i, spool in enumerate(self._spools):
            if only is not None and i != only or _size(spool.file) <= spool.offset:
                continue  # (most tasks write nothing at the fd level: one system call)
            wrote = False
            for text in spool.read_new():
                wrote = True
                if self._tees is not None:
                    self._tees[i].append(text)
                else:
                    self.console[i].write(text)
            if wrote and self.console[i] is not None:
                try:
                    self.console[i].flush()
                except (OSError, ValueError):
                    pass

    def poll(self) -> None:
        """Hand on what the fds got, while a task runs (the poller's call, every POLL_S)."""
        with self.lock:
            if self in _ACTIVE:
                try:
                    self.drain()
                except (OSError, ValueError):
                    pass

    def _restore(self) -> None:
        for i, spool in enumerate(self._spools):
            if self.console[0] is not None and self.console[i] is not None:
                try:
                    self.console[i].flush()
                except (OSError, ValueError):
                    pass
            os.dup2(spool.saved, spool.fd)
            os.close(spool.saved)
            os.ftruncate(spool.file, 0)  # kept open for the process's next batch
        self._spools = []
        self.console = (None, None)


_FILES: dict[int, int] = {}  # fd -> the unlinked file it points at during a batch


def _spool_file(fd: int) -> int:
    """The file fd `fd` points at while a batch runs, made once per process (making one costs
    milliseconds, a batch may be one short task)."""
    file = _FILES.get(fd)
    if file is None:
        folder = tempfile.mkdtemp(prefix="rayflow-fd-")
        path = os.path.join(folder, str(fd))
        # O_APPEND: every writer (a subprocess included) writes at the end, so the file can
        # be emptied between tasks.
        file = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.unlink(path)
        os.rmdir(folder)
        _FILES[fd] = file
    return file


_LIVE: weakref.WeakSet = weakref.WeakSet()
_ACTIVE: set = set()   # the captures of the batches running now (the poller reads them)
_POLLER: list = []     # the process's one poller thread, once started


def _start_poller() -> None:
    """One thread per process reads the running batch's fds every POLL_S, so a long task's
    output reaches the console as it is written. Started once and kept: starting a thread a
    batch costs more than a batch of tiny splits on a loaded machine."""
    if _POLLER and _POLLER[0].is_alive():
        return
    thread = threading.Thread(target=_poll_forever, name="rayflow-fd-capture", daemon=True)
    _POLLER[:] = [thread]
    thread.start()


def _poll_forever() -> None:
    while True:
        time.sleep(FdCapture.POLL_S)
        for cap in list(_ACTIVE):
            cap.poll()


def _in_forked_child() -> None:
    """A process forked during a task (multiprocessing, say) writes to the fds, which the
    parent captures into the task's log, as in Metaflow; its copy of the lock may have been
    taken by a thread that does not exist in it."""
    for cap in list(_LIVE):
        cap.lock = threading.RLock()
        _POLLER.clear()
        tees, cap._tees = cap._tees, None
        if tees is None:
            continue
        for tee in tees:
            tee.fdcap = None
        if sys.stdout is tees[0] and sys.__stdout__ is not None:
            sys.stdout = sys.__stdout__
        if sys.stderr is tees[1] and sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_forked_child)

_LIBC: list = []


def _flush_stdio() -> None:
    """Flush Python's own stdout/stderr objects and C's stdio buffers (a C library's printf
    to a file is buffered until then), so that what they hold reaches the fds now."""
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    if not _LIBC:
        try:
            import ctypes

            _LIBC.append(ctypes.CDLL(None).fflush)
        except (ImportError, OSError, AttributeError):
            _LIBC.append(None)
    if _LIBC[0] is not None:
        _LIBC[0](None)
