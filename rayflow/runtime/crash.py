"""When a step kills its own process (a segfault in C code, an abort), say so, and keep its logs.

A batch's output normally reaches the datastore only when the batch ends. So that a process
that dies mid-step loses nothing, every batch also spools its tasks' output, line by line, to a
file on its node, and points Python's `faulthandler` at the same file: on SIGSEGV, SIGBUS,
SIGFPE, SIGABRT or SIGILL, the interpreter writes "Fatal Python error: ..." and the traceback
there before it dies.

A step stuck past its @timeout where no signal can interrupt it (in C code) is ended the same
way, by a watchdog thread that first writes a `timeout|<task>` line to the spool: the next run
of the batch then fails that task with TimeoutException (which @retry and @catch see as the
step's own) instead of running it again.

Ray runs a task again when its worker dies. The new attempt of the batch first reads the spool
the dead one left. A fatal-error message there means the step itself crashed the process:
running it again would crash again, so the batch records that task as a failed attempt, with
the logs it wrote and the signal it died of, and raises `StepCrashed` instead of running
anything (the run loop retries it only as @retry says). No message means the process was killed
from outside (SIGKILL, the OOM killer) or its node was lost: then the batch simply runs again,
which is what Ray's retries are for. A batch that finishes removes its spool.
"""

from __future__ import annotations

import faulthandler
import mmap
import os
import re
import sys
import tempfile
from dataclasses import dataclass

from ..exceptions import RayflowException

TASK_SLOT = 64  # bytes of a task id the spool's mapped first line holds
_FATAL = re.compile(r"^Fatal Python error: (.+?)\s*$", re.M)
SIGNALS = {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS",
           "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
           "Aborted": "SIGABRT", "Illegal instruction": "SIGILL"}


class StepCrashed(RayflowException):
    """The step's process died of a fatal signal while the step ran."""

    headline = "Step crashed"

    def __init__(self, msg: str, task_id: str = "", signal_name: str = ""):
        super().__init__(msg)
        self.task_id = task_id
        self.signal_name = signal_name

    def __reduce__(self):
        return (type(self), (self.msg, self.task_id, self.signal_name))


@dataclass
class Crash:
    task_id: str
    fatal: str          # faulthandler's words, e.g. "Segmentation fault"
    signal_name: str    # e.g. "SIGSEGV"
    stdout: list[str]
    stderr: list[str]   # the step's own stderr lines, then faulthandler's report

    def describe(self, step: str) -> str:
        return (f"Step {step!r}: the step's process died with {self.signal_name} "
                f"({self.fatal.lower()}) in task {self.task_id}, so it was not run again. "
                f"This is a crash in native code the step called (a C extension, ctypes); its "
                f"output up to the crash is in the task's logs.")


def spool_root() -> str:
    return os.path.join(tempfile.gettempdir(), f"rayflow-spool-{os.getuid()}")


class BatchSpool:
    """The spool file of one batch: `[step, first task id, attempt]` on this node."""

    def __init__(self, flow: str, run_id: str, step: str, first_task: str, attempt: int):
        folder = os.path.join(spool_root(), flow, run_id, step)
        self.path = os.path.join(folder, f"{first_task}.{attempt}.spool")
        self._file = None
        self._slot = None  # the mapped `task|` line: which task runs (see task_started)
        self._faulthandler_was_on = False

    def previous_crash(self) -> Crash | None:
        """What an earlier, dead run of this batch left, if the step itself crashed it."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        fatal = _FATAL.search(text)
        if fatal is None:
            return None
        task_id, out, err = "", {}, {}
        report = text[fatal.start():].splitlines()
        for line in text[:fatal.start()].splitlines():
            kind, _, rest = line.partition("|")
            if kind == "task":
                task_id = rest.rstrip()
            elif kind in ("stdout", "stderr"):
                tid, _, body = rest.partition("|")
                (out if kind == "stdout" else err).setdefault(tid, []).append(body)
        words = fatal.group(1)
        return Crash(task_id, words, SIGNALS.get(words, "a fatal signal"),
                     out.get(task_id, []), err.get(task_id, []) + report)

    def open(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # Read and write: the first line is mapped (task_started).
            self._file = open(self.path, "w+", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._file.write("task|" + " " * TASK_SLOT + "\n")
            self._file.flush()
            self._slot = mmap.mmap(self._file.fileno(), 5 + TASK_SLOT)
        except (OSError, ValueError):
            self._slot = None
            if self._file is None:
                return  # no spool (a full /tmp, say): the batch runs as it would without one
        self._faulthandler_was_on = faulthandler.is_enabled()
        faulthandler.enable(file=self._file, all_threads=False)

    def task_started(self, task_id: str) -> None:
        """Which task runs now, for the report of a crash: written into the spool's first
        line, mapped in memory (a page of the file: what the process wrote there survives
        its death), so a split costs no system call."""
        slot = self._slot
        raw = task_id.encode()
        if slot is not None and len(raw) <= TASK_SLOT:
            slot[5:] = raw.ljust(TASK_SLOT)
        else:
            self._write(f"task|{task_id}\n")

    def timed_out(self, task_id: str) -> None:
        """The @timeout watchdog is about to end this process: say which task ran over."""
        self._write(f"timeout|{task_id}\n")

    def previous_timeout(self) -> str | None:
        """The task whose @timeout made an earlier, dead run of this batch end, if any."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return None
        return next((line.split("|", 1)[1] for line in reversed(lines)
                     if line.startswith("timeout|")), None)

    def line(self, stream: str, task_id: str, text: str) -> None:
        self._write(f"{stream}|{task_id}|{text.rstrip(chr(10))}\n")

    def _write(self, text: str) -> None:
        if self._file is not None:
            try:
                self._file.write(text)
            except (OSError, ValueError):
                self._file = None  # a full disk must not fail the step

    def close(self, remove: bool) -> None:
        if self._slot is not None:
            self._slot.close()
            self._slot = None
        if self._file is not None:
            faulthandler.disable()
            if self._faulthandler_was_on:  # Ray's worker had it on, to its own stderr
                faulthandler.enable(file=sys.__stderr__, all_threads=True)
            self._file.close()
            self._file = None
        if remove:
            try:
                os.remove(self.path)
            except OSError:
                pass


def remove_run_spool(flow: str, run_id: str) -> None:
    """Remove the run's spool folders on this node once the run is over, where they are
    empty (a batch that died leaves its file, the evidence of its crash)."""
    top = os.path.join(spool_root(), flow, run_id)
    for folder, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass
