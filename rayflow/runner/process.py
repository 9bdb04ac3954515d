"""One `rayflow` subprocess started by `Runner`: its output kept in files, echoed live when
asked, waited for with or without asyncio, and the run it started (`ExecutingRun`).

It owns only the process it started: `kill()` signals that pid, whose embedded Ray ends with
it (rayflow/runtime/reaper.py). It never imports ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator

STREAMS = ("stdout", "stderr")
POLL_S = 0.05


def new_folder() -> str:
    """A private folder for one command's logs and attribute file."""
    import tempfile

    return tempfile.mkdtemp(prefix="rayflow-runner-")


class CommandProcess:
    """A started command whose stdout and stderr go to files in `folder`, which it owns
    (cleanup removes it)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, show_output: bool,
                 folder: str):
        self.argv = argv
        self.folder = folder
        self.log_files = {s: os.path.join(folder, f"{s}.log") for s in STREAMS}
        self.timeout = False
        handles = {s: open(path, "wb") for s, path in self.log_files.items()}
        try:
            self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                            stdout=handles["stdout"], stderr=handles["stderr"])
        finally:
            for h in handles.values():
                h.close()
        self._echoes = [threading.Thread(target=self._echo, args=(s,), daemon=True,
                                         name=f"rayflow-runner-{s}")
                        for s in STREAMS] if show_output else []
        for t in self._echoes:
            t.start()

    # -- state -------------------------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def read(self, stream: str) -> str:
        with open(self.log_files[stream], encoding="utf-8", errors="replace") as fh:
            return fh.read()

    # -- waiting -----------------------------------------------------------------------------
    def sync_wait(self, timeout: float | None = None) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.timeout = True
            self.kill()
        for t in self._echoes:
            t.join()

    async def wait(self, timeout: float | None = None, stream: str | None = None) -> None:
        """Wait for the process to end (killing it after `timeout` seconds), printing one of
        its streams meanwhile when `stream` is given."""
        deadline = None if timeout is None else time.monotonic() + timeout
        printer = asyncio.ensure_future(self._print(stream)) if stream else None
        try:
            while self.returncode is None:
                if deadline is not None and time.monotonic() >= deadline:
                    self.timeout = True
                    self.kill()
                    break
                await asyncio.sleep(POLL_S)
            if printer is not None:
                await printer
        finally:
            if printer is not None and not printer.done():
                printer.cancel()

    async def _print(self, stream: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        async for _, line in self.stream_log(stream):
            print(line, file=out, flush=True)

    async def stream_log(self, stream: str, position: int | None = None
                         ) -> AsyncIterator[tuple[int, str]]:
        """Each line of `stream` as it is written, with the position after it, until the
        process has ended and every line is read. Start at `position` to pick up where an
        earlier stream stopped."""
        if stream not in STREAMS:
            raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        with open(self.log_files[stream], "rb") as fh:
            if position:
                fh.seek(position)
            pending = b""
            while True:
                ended = self.returncode is not None
                chunk = fh.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith(b"\n"):
                        yield fh.tell(), pending.decode("utf-8", "replace").rstrip("\r\n")
                        pending = b""
                    continue
                if ended:
                    if pending:
                        yield fh.tell(), pending.decode("utf-8", "replace")
                    return
                await asyncio.sleep(POLL_S)

    def _echo(self, stream: str) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        with open(self.log_files[stream], "rb") as fh:
            while True:
                ended = self.process.poll() is not None
                chunk = fh.read(65536)
                if chunk:
                    out.write(chunk.decode("utf-8", "replace"))
                    out.flush()
                    continue
                if ended:
                    return
                time.sleep(POLL_S)

    # -- ending ------------------------------------------------------------------------------
    def kill(self, grace_s: float = 5.0) -> None:
        """End our own process: SIGTERM, then SIGKILL if it is still there after `grace_s`."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cleanup(self) -> None:
        self.kill()
        for t in self._echoes:
            t.join(timeout=1)
        shutil.rmtree(self.folder, ignore_errors=True)


class ExecutingRun:
    """A run started by `Runner`: the process (`status`, `returncode`, `stdout`, `stderr`,
    `wait`, `stream_log`) and the run it made (`run`, a client `Run`)."""

    def __init__(self, runner, command: CommandProcess, run):
        self.runner = runner
        self.command_obj = command
        self.run = run

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(self, *exc) -> None:
        self.runner.cleanup()

    def __repr__(self) -> str:
        return f"ExecutingRun({self.run.pathspec!r}, status={self.status!r})"

    @property
    def returncode(self) -> int | None:
        """The subprocess's exit status; None while it runs."""
        return self.command_obj.returncode

    @property
    def status(self) -> str:
        """"running", "successful", "failed", or "timeout" (wait's timeout ended it)."""
        if self.command_obj.timeout:
            return "timeout"
        code = self.command_obj.returncode
        if code is None:
            return "running"
        return "successful" if code == 0 else "failed"

    @property
    def stdout(self) -> str:
        """Everything the run printed to stdout so far (all of it once it has ended)."""
        return self.command_obj.read("stdout")

    @property
    def stderr(self) -> str:
        return self.command_obj.read("stderr")

    async def wait(self, timeout: float | None = None, stream: str | None = None
                   ) -> ExecutingRun:
        """Wait until the run ends (ending it after `timeout` seconds), printing `stream`
        ("stdout" or "stderr") meanwhile if given. Returns self, to chain calls."""
        await self.command_obj.wait(timeout, stream)
        return self

    async def stream_log(self, stream: str, position: int | None = None
                         ) -> AsyncIterator[tuple[int, str]]:
        """`async for position, line in running.stream_log("stdout")`: lines as they come."""
        async for item in self.command_obj.stream_log(stream, position):
            yield item

    def kill(self) -> None:
        """End the run's process (the run is then interrupted and can be resumed)."""
        self.command_obj.kill()


class ExecutingTask(ExecutingRun):
    """A task spun by `Runner.spin`: the process, and the spun task (`task`, a client
    `Task` in the spin datastore)."""

    def __init__(self, runner, command: CommandProcess, task):
        super().__init__(runner, command, task.parent.parent)
        self.task = task

    def __repr__(self) -> str:
        return f"ExecutingTask({self.task.pathspec!r}, status={self.status!r})"


def _file_check(path: str, command: CommandProcess, deadline: float) -> tuple[bool, str | None]:
    """(settled, contents): the file's contents once written; (True, None) once the command
    ended without writing it, or was still silent at `deadline` (then it is ended)."""
    ended = command.returncode is not None
    with contextlib.suppress(FileNotFoundError):
        with open(path) as fh:
            return True, fh.read()
    if not ended and time.monotonic() >= deadline:
        command.kill()
        return True, None
    return ended, None


def wait_for_file(path: str, command: CommandProcess, timeout_s: float) -> str | None:
    """The contents of `path` once the command has written it; None if the command ended
    without writing it. A command still silent after `timeout_s` is ended."""
    deadline = time.monotonic() + timeout_s
    while True:
        settled, text = _file_check(path, command, deadline)
        if settled:
            return text
        time.sleep(POLL_S)


async def async_wait_for_file(path: str, command: CommandProcess, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    while True:
        settled, text = _file_check(path, command, deadline)
        if settled:
            return text
        await asyncio.sleep(POLL_S)
