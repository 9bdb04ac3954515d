"""Live progress on the console: one line per step with done, running and failed counts, a
rate and an ETA. A rich live table on a terminal; plain periodic lines otherwise (CI logs)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field


@dataclass
class StepProgress:
    name: str
    total: int | None = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    retried: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def rate(self) -> float:
        elapsed = (self.finished or time.time()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        if not self.total or self.finished or self.done == 0:
            return ""
        rate = self.rate()
        left = max(0, self.total - self.done)
        return f"eta {left / rate:,.0f}s" if rate > 0 else ""

    def line(self) -> str:
        total = f"/{self.total:,}" if self.total else ""
        parts = [f"{self.name:<20} {self.done:>9,}{total} done", f"{self.running:,} running"]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.retried:
            parts.append(f"{self.retried:,} retried")
        if self.total and self.total > 1:
            parts.append(f"{self.rate():,.0f}/s")
            eta = self.eta()
            if eta:
                parts.append(eta)
        return ", ".join(parts)


class Progress:
    """Counts per step; renders them every `interval` seconds."""

    def __init__(self, enabled: bool = True, interval: float | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 5.0)
        self.steps: dict[str, StepProgress] = {}
        self._last = 0.0
        self._live = None

    def step(self, name: str) -> StepProgress:
        sp = self.steps.get(name)
        if sp is None:
            sp = self.steps[name] = StepProgress(name, total=0)
        return sp

    def add_total(self, name: str, n: int) -> None:
        self.step(name).total += n

    def submitted(self, name: str, n: int) -> None:
        self.step(name).running += n

    def finished(self, name: str, ok: int, failed: int, retried: int = 0) -> None:
        sp = self.step(name)
        sp.running -= ok + failed + retried
        sp.done += ok
        sp.failed += failed
        sp.retried += retried
        if sp.total and sp.done >= sp.total and sp.running == 0:
            sp.finished = time.time()
            if self.enabled and not self.tty:
                self._print(sp.line())

    def tick(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.time()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.tty:
            self._render_live()
        else:
            for sp in self.steps.values():
                if sp.finished is None and (sp.running or sp.done):
                    self._print(sp.line())

    def _render_live(self) -> None:
        """A rich progress bar per step: done/total, running, failed, rate and ETA."""
        if self._live is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._live = Progress(
                TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"), TimeRemainingColumn(),
                console=Console(file=self.stream), refresh_per_second=4)
            self._live.start()
            self._bars = {}
        for sp in self.steps.values():
            bar = self._bars.get(sp.name)
            extra = f"{sp.running:,} running"
            if sp.failed:
                extra += f", [red]{sp.failed:,} failed[/red]"
            if sp.retried:
                extra += f", {sp.retried:,} retried"
            if sp.total and sp.total > 1:
                extra += f", {sp.rate():,.0f}/s"
            if bar is None:
                bar = self._bars[sp.name] = self._live.add_task(sp.name, extra=extra)
            self._live.update(bar, completed=sp.done, total=max(sp.total or 1, 1), extra=extra)

    def close(self) -> None:
        if self._live is not None:
            self.tick(force=True)
            self._live.stop()
            self._live = None

    def say(self, text: str) -> None:
        """A line about the run itself (not a count): printed even with progress off."""
        print(text, file=self.stream, flush=True)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
