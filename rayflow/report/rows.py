"""What the run report needs of each task attempt, kept by the driver as the run goes, in
flat arrays (about 40 bytes a task): building the report of a 100,000-task run then costs no
second read of its records. The report falls back on the records (report.collect) for a run
that failed, was resumed from a report-less run, or is rebuilt later.

A batch of foreach splits the driver was told about as a whole (runtime/fanout.py) is one
row spanning the batch, and its splits' durations join a bounded sample per step
(`SAMPLE`): a ten-million-split foreach keeps a few thousand rows, not ten million."""

from __future__ import annotations

import time
from array import array

SAMPLE = 100_000  # durations a step keeps for its statistics, at most (then every k-th)


class TaskRows:
    def __init__(self, steps):
        self.steps = list(steps)
        self._index = {s: i for i, s in enumerate(self.steps)}
        self.step = array("H")
        self.task_id = array("q")
        self.started = array("d")
        self.finished = array("d")
        self.worker = array("l")
        self.node = array("H")
        self.ok = array("b")
        self.rss = array("q")
        self.span = array("I")            # tasks a row stands for (a batch's row: several)
        # 1: the row is one attempt, whose duration counts; 0: a batch's row, whose splits'
        # durations are in the sample (a batch of one split too: not counted twice)
        self.single = array("b")
        self._sample: dict[int, array] = {}   # step -> durations of batched splits
        self._stride: dict[int, int] = {}     # step -> one batched split in this many kept
        self._nodes: list[str] = []
        self._node_index: dict[str, int] = {}
        n = len(self.steps)
        self.tasks = [0] * n
        self.done = [0] * n
        self.failed = [0] * n
        self.retried = [0] * n
        self.cloned = [0] * n
        # The start of the run's first task and the end of its last (a clone at the moment
        # it was cloned): the run's duration.
        self.first: float | None = None
        self.last: float | None = None

    def _span(self, start: float, end: float) -> None:
        if self.first is None or start < self.first:
            self.first = start
        if self.last is None or end > self.last:
            self.last = end

    def _step(self, step: str) -> int:
        i = self._index.get(step)
        if i is None:
            i = self._index[step] = len(self.steps)
            self.steps.append(step)
            for counts in (self.tasks, self.done, self.failed, self.retried, self.cloned):
                counts.append(0)
        return i

    def attempt(self, outcome) -> None:
        """One attempt that ran (success or not), for the timeline."""
        if not outcome.started_at or not outcome.finished_at:
            return
        self._span(outcome.started_at, outcome.finished_at)
        node = self._node_index.get(outcome.node)
        if node is None:
            node = self._node_index[outcome.node] = len(self._nodes)
            self._nodes.append(outcome.node)
        try:
            tid = int(outcome.task_id)
        except ValueError:
            tid = -1
        self.step.append(self._step(outcome.step))
        self.task_id.append(tid)
        self.started.append(outcome.started_at)
        self.finished.append(outcome.finished_at)
        self.worker.append(int(outcome.worker or 0))
        self.node.append(node)
        self.ok.append(1 if outcome.ok else 0)
        self.rss.append(int(outcome.peak_rss or 0))
        self.span.append(1)
        self.single.append(1)

    def batch(self, summary, first_task_id: int) -> None:
        """A batch of splits that all succeeded, told as a whole (`fanout.BatchSummary`)."""
        i = self._step(summary.step)
        node = self._node_index.get(summary.node)
        if node is None:
            node = self._node_index[summary.node] = len(self._nodes)
            self._nodes.append(summary.node)
        for col, value in ((self.step, i), (self.task_id, first_task_id),
                           (self.started, summary.started), (self.finished, summary.finished),
                           (self.worker, int(summary.worker or 0)), (self.node, node),
                           (self.ok, 1), (self.rss, int(summary.peak_rss or 0)),
                           (self.span, summary.count), (self.single, 0)):
            col.append(value)
        self.tasks[i] += summary.count
        self.done[i] += summary.count
        stride = self._stride.get(i, 1)
        sample = self._sample.setdefault(i, array("f"))
        sample.extend(summary.duration_array()[::stride])
        while len(sample) > SAMPLE:  # keep every other one, and take half as many from now
            sample = self._sample[i] = sample[::2]
            stride = self._stride[i] = stride * 2

    def final(self, step: str, attempt: int, ok: bool, cloned: bool = False) -> None:
        """A task's last word: finished (or cloned by resume), or failed for good."""
        i = self._step(step)
        self.tasks[i] += 1
        if ok:
            self.done[i] += 1
        else:
            self.failed[i] += 1
        if attempt > 0:
            self.retried[i] += 1
        if cloned:
            self.cloned[i] += 1
            now = time.time()
            self._span(now, now)

    def per_step(self) -> dict:
        durs: dict[int, list[float]] = {i: [] for i in range(len(self.steps))}
        peak = [0] * len(self.steps)
        for k in range(len(self.step)):
            i = self.step[k]
            if self.ok[k] and self.single[k]:
                durs[i].append(self.finished[k] - self.started[k])
            if self.rss[k] > peak[i]:
                peak[i] = self.rss[k]
        out = {}
        for i, s in enumerate(self.steps):
            d = sorted(durs[i] + list(self._sample.get(i, ())))
            out[s] = {"tasks": self.tasks[i], "done": self.done[i], "failed": self.failed[i],
                      "retried": self.retried[i], "durations": d, "peak_rss": peak[i],
                      "cloned": self.cloned[i]}
        return out

    def timeline(self) -> list[tuple]:
        return [(self.steps[self.step[k]], str(self.task_id[k]), self.started[k],
                 self.finished[k], self._nodes[self.node[k]], self.worker[k], bool(self.ok[k]))
                for k in range(len(self.step))]
