"""Live progress on the console: one line per step with done, running and failed counts, a
rate and an ETA. A rich live table on a terminal; plain periodic lines otherwise (CI logs).

A step's total is what the graph says it will be (`ExpectedTotals`), not the tasks that have
arrived so far: a step inside a foreach has as many tasks as the foreach has splits, known once
every task of the foreach step has fanned out; until then it shows "of at least N" and no ETA,
so neither the percentage nor the ETA jumps as more parents fan out.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field


class ExpectedTotals:
    """How many tasks each step of a run will have, as far as is known: `total(step)` is
    (a count, whether it is exact); not exact, the count is a lower bound.

    A step runs once per task of its innermost enclosing foreach's splits (once per run
    outside any foreach), unless a switch lies between that foreach and the step (it may not
    run) or the step is a recursive switch (it runs again and again): those have no count
    before they have run, only the tasks seen."""

    def __init__(self, graph):
        self._frame: dict[str, str | None] = {}
        self._certain: dict[str, bool] = {}
        for name in graph.steps:
            node = graph[name]
            enclosing = node.split_parents[:-1] if node.join_of else node.split_parents
            foreachs = [p for p in enclosing if graph[p].type == "split-foreach"]
            frame = foreachs[-1] if foreachs else None
            base = tuple(graph[frame].switch_path) if frame else ()
            self._frame[name] = frame
            self._certain[name] = tuple(node.switch_path) == base and not node.is_recursive
        self._splits: Counter = Counter()   # foreach step -> splits made so far
        self._fanned: Counter = Counter()   # foreach step -> its tasks that fanned out

    def fanned_out(self, step: str, num_splits: int) -> None:
        """A task of foreach step `step` finished and made `num_splits` splits."""
        self._splits[step] += num_splits
        self._fanned[step] += 1

    def total(self, step: str) -> tuple[int | None, bool]:
        if step not in self._certain:
            return None, False
        frame = self._frame[step]
        if frame is None:
            return (1, True) if self._certain[step] else (None, False)
        if not self._certain[step]:
            return None, False
        parents, exact = self.total(frame)
        known = self._splits[frame]
        return known, exact and parents is not None and self._fanned[frame] >= parents


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
    exact: bool = True  # `total` is the step's final count, not a lower bound so far
    waiting: str | None = None  # why its tasks wait, e.g. "waiting for 1 CPU: ..."

    def rate(self) -> float:
        elapsed = (self.finished or time.time()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> str:
        if not self.total or not self.exact or self.finished or self.done == 0:
            return ""
        rate = self.rate()
        left = max(0, self.total - self.done)
        return f"eta {left / rate:,.0f}s" if rate > 0 else ""

    def line(self) -> str:
        if not self.exact:
            count = f"{self.done:>9,} done of at least {self.total:,}"
        else:
            count = f"{self.done:>9,}{f'/{self.total:,}' if self.total else ''} done"
        parts = [f"{self.name:<20} {count}", f"{self.running:,} running"]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.retried:
            parts.append(f"{self.retried:,} retried")
        if self.total and self.total > 1:
            parts.append(f"{self.rate():,.0f}/s")
            eta = self.eta()
            if eta:
                parts.append(eta)
        if self.waiting:
            parts.append(self.waiting)
        return ", ".join(parts)


class Progress:
    """Counts per step; renders them every `interval` seconds."""

    def __init__(self, enabled: bool = True, interval: float | None = None, stream=None,
                 graph=None):
        self.expected = ExpectedTotals(graph) if graph is not None else None
        self.arrived: Counter = Counter()  # step -> tasks seen so far
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
        """`n` more tasks of step `name` are known (ready, or splits made)."""
        self.arrived[name] += n
        self._settle(self.step(name))

    def fanned_out(self, name: str, num_splits: int) -> None:
        """A task of foreach step `name` made `num_splits` splits."""
        if self.expected is not None:
            self.expected.fanned_out(name, num_splits)
            for sp in self.steps.values():
                self._settle(sp)

    def _settle(self, sp: StepProgress) -> None:
        """The step's total: what the graph says it will be, or at least what has arrived."""
        known, exact = self.expected.total(sp.name) if self.expected else (None, False)
        sp.total = max(self.arrived[sp.name], known or 0)
        sp.exact = exact or self.expected is None

    def submitted(self, name: str, n: int) -> None:
        self.step(name).running += n

    def finished(self, name: str, ok: int, failed: int, retried: int = 0) -> None:
        sp = self.step(name)
        sp.running -= ok + failed + retried
        sp.done += ok
        sp.failed += failed
        sp.retried += retried
        if sp.exact and sp.total and sp.done >= sp.total and sp.running == 0:
            sp.finished = time.time()
            if self.enabled and not self.tty:
                self._print(sp.line())

    def waiting(self, name: str, why: str | None) -> None:
        """Why the step's tasks wait (None: they no longer do); printed once when it starts."""
        sp = self.step(name)
        if why and not sp.waiting and self.enabled and not self.tty:
            self._print(f"{name}: {why}")
        sp.waiting = why

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
            if not sp.exact:  # no bar, percentage or ETA from a total that will grow
                extra = f"of at least {sp.total:,}, {extra}"
            if sp.waiting:
                extra += f", [yellow]{sp.waiting}[/yellow]"
            if bar is None:
                bar = self._bars[sp.name] = self._live.add_task(sp.name, extra=extra)
            total = max(sp.total or 1, 1) if sp.exact else None
            self._live.update(bar, completed=sp.done, total=total, extra=extra)

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
