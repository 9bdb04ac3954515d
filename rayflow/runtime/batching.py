"""Batching of foreach splits, the driver's side: how many tasks go into one submission.

A Ray task costs about half a millisecond to schedule; a foreach of 100,000 splits that each
take a millisecond would spend more time being scheduled than working. So the run loop submits
tasks in `Batch`es: a batch is tasks of one step, run one after another in one Ray task, each
keeping its own pathspec, record, retry and catch. This module owns, in the driver:

- sizing (`BatchSizer`): a step's first tasks go one at a time, until there is a measure of
  how long one takes; after that a batch holds about `TARGET_BATCH_SECONDS` of work, never
  more than a fair share of what is left (so every worker gets some), never more than
  `MAX_BATCH`, and always one task for steps with @timeout or per-split resources;
- how the foreach variable is cut into chunks (`chunking`; the cutting itself,
  `worker.slice_items`, runs in a worker), so each batch fetches only its own splits' items;
- what goes into a batch (`BatchMaker`): each task's `TaskSpec` and the step's Ray options;
- unpacking a finished batch back into one result per task (`BatchResult.per_task`);
- `starts_early`: which finished tasks may hand their values on before their checkpoint is
  written (the worker decides it the same way).

Running and persisting a batch happens in the worker: `worker.py`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import TaskError
from .spec import ItemLoc, TaskOutcome, TaskSpec

TARGET_BATCH_SECONDS = 0.25
MAX_BATCH = 2000
MAX_CHUNKS = 4096          # most objects one foreach variable is cut into


@dataclass
class Batch:
    """One submission: tasks of one step (with the attempt each runs), run in one Ray task."""

    step: str
    tasks: list            # scheduler.ReadyTask
    attempts: list[int]
    specs: list[TaskSpec]
    options: dict = field(default_factory=dict)   # Ray options from @resources
    timeout: float | None = None                  # @timeout of the step, in seconds
    # Set by the executor:
    submitted_at: float = 0.0
    handle: Any = None
    payload_ref: Any = None
    segment_ref: Any = None    # a batch of splits' join segment (runtime/fanout.py)
    system_attempts: int = 0   # runs again after its worker died before it delivered
    gang: Any = None           # a member of a @parallel step's gang (runtime/gang.py)


@dataclass
class BatchResult:
    """A finished batch: an outcome per task, or one error for the batch as a whole (its
    worker died, it was cancelled, it could not be scheduled)."""

    batch: Batch
    outcomes: list[TaskOutcome] | None
    payload_ref: Any = None
    error: TaskError | None = None
    # "delivered": the tasks ran and their values are in the object store, but their
    # checkpoints are still being written (a later "durable" result for the same batch says
    # how that ended). "durable": the batch is over, its records written (or it failed).
    phase: str = "durable"

    def per_task(self) -> list[tuple[Any, int, TaskOutcome | None, TaskError | None]]:
        """(task, attempt, outcome, error) for each task of the batch, in order."""
        b = self.batch
        if self.outcomes is None:
            return [(t, a, None, self.error) for t, a in zip(b.tasks, b.attempts)]
        return [(t, o.attempt, o, o.error) for t, o in zip(b.tasks, self.outcomes)]


@dataclass
class _StepStats:
    tasks: int = 0
    seconds: float = 0.0


class BatchSizer:
    """How many ready splits of a step the next batch takes, from measured durations."""

    def __init__(self, parallelism: int):
        self.parallelism = max(1, parallelism)
        self._stats: dict[str, _StepStats] = {}

    def record(self, step: str, outcomes: list[TaskOutcome]) -> None:
        st = self._stats.setdefault(step, _StepStats())
        st.tasks += len(outcomes)
        st.seconds += max(o.finished_at for o in outcomes) - min(o.started_at for o in outcomes)

    def record_span(self, step: str, tasks: int, seconds: float) -> None:
        st = self._stats.setdefault(step, _StepStats())
        st.tasks += tasks
        st.seconds += seconds

    def size(self, step: str, remaining: int, one_at_a_time: bool = False) -> int:
        if one_at_a_time:
            return 1
        st = self._stats.get(step)
        if st is None or st.tasks < self.parallelism:
            return 1
        per_task = max(st.seconds / st.tasks, 1e-5)
        size = int(TARGET_BATCH_SECONDS / per_task)
        fair = math.ceil(remaining / (2 * self.parallelism))
        return max(1, min(size, fair, MAX_BATCH))


class BatchMaker:
    """Makes the `Batch` the run loop submits: each task's `TaskSpec` (its parents, the view of
    what it inherits, its foreach item, the not yet durable tasks it must wait for) and the
    step's Ray options. `undurable` is the run loop's own table of tasks handed on before
    their checkpoints were written (task id -> (step, locations)), read here."""

    def __init__(self, flow_name: str, run_id: str, undurable: dict):
        self.flow_name, self.run_id, self.undurable = flow_name, run_id, undurable

    def make(self, tasks_attempts: list, decos, flat_cache: dict,
             fallback: bool = False) -> Batch:
        """The batch of `tasks_attempts` ((ReadyTask, attempt) pairs, all of one step);
        `flat_cache` is shared by the batches made in one pass over the queue."""
        step = tasks_attempts[0][0].step
        specs = [self._spec_for(t, a, flat_cache) for t, a in tasks_attempts]
        for spec in specs:
            spec.fallback = fallback
        return Batch(step, [t for t, _ in tasks_attempts], [a for _, a in tasks_attempts],
                     specs, self._options_for(tasks_attempts[0][0], decos),
                     timeout=decos.timeout_seconds)

    def make_range(self, fan, start: int, count: int, decos, flat_cache: dict) -> Batch:
        """The batch of splits `start` .. `start + count - 1` of `fan`, fresh (attempt 0):
        its tasks and specs are an index range (`SplitRange`, `SplitSpecs`), made per split
        only where they are read."""
        first = fan.task_at(start)
        one = self._spec_for(first, 0, flat_cache)
        template = TaskSpec(one.step, "", 0, fan.stack, one.view, parents=one.parents,
                            awaits=one.awaits)
        c = fan.chunk
        lo, hi = start // c, (start + count - 1) // c
        specs = SplitSpecs(template, fan.split_step, fan.num_splits, fan.first_id, start,
                           count, c, list(fan.chunk_refs[lo:hi + 1]), lo, fan.foreach_var,
                           fan.var_sha)
        return Batch(fan.step, SplitRange(fan, start, count), [0] * count, specs,
                     self._options_for(first, decos), timeout=decos.timeout_seconds)

    def _options_for(self, task, decos) -> dict:
        """The step's Ray options: @resources (per split where they depend on it) and the
        @pypi/@conda environment (runtime/environments.py), for every way a batch is made."""
        fan = task.fanout
        if fan is not None and fan.shapes is not None:
            options, index = fan.shapes
            options = dict(options[index[task.split_index]])
        else:
            res = decos.resources
            options = res.ray_options(None) if not res.is_dynamic else {"num_cpus": 1.0}
        if decos.runtime_env:
            options["runtime_env"] = decos.runtime_env
        return options

    def _spec_for(self, task, attempt: int, flat_cache: dict) -> TaskSpec:
        if task.is_join:
            # Its parents' pathspecs are made in the worker, from the table.
            spec = TaskSpec(task.step, task.task_id, attempt, task.stack,
                            iteration=task.iteration, join=task.parents.seal())
            if self.undurable:
                # A join's inputs are durable (never handed on early), but what they
                # inherited may not be yet.
                spec.awaits = self._awaits(task, spec.join.pending_makers(), parents=False)
            return spec
        # Every split of a foreach has the same parent: its pathspec is made once a batch.
        first = task.parents[0].key if task.parents else None
        parents = flat_cache.get(first)
        if parents is None:
            parents = flat_cache[first] = tuple(
                f"{self.flow_name}/{self.run_id}/{p.key.step}/{p.key.task_id}"
                for p in task.parents)
        spec = TaskSpec(task.step, task.task_id, attempt, task.stack, parents=parents,
                        iteration=task.iteration)
        if task.parents:
            scope = task.parents[0].scope
            cached = flat_cache.get(id(scope))
            if cached is None:
                flat = scope.flatten()
                makers = {loc.key for loc in flat.values() if loc.pending} \
                    if self.undurable else ()
                cached = flat_cache[id(scope)] = (flat, makers)
            spec.view, makers = cached
            if self.undurable:
                spec.awaits = self._awaits(task, makers)
        if task.split_parent is not None:
            fan = task.fanout
            i = task.split_index
            spec.item = ItemLoc(fan.chunk_refs[i // fan.chunk], i % fan.chunk,
                                fan.foreach_var, fan.var_sha, i)
        return spec

    def _awaits(self, task, makers, parents: bool = True) -> dict[str, str] | None:
        """The not yet durable tasks that `task` depends on: its parents, and the makers of
        artifacts it sees whose hashes are still to come."""
        und = self.undurable
        out = {tid: und[tid][0] for tid in makers if tid in und}
        for p in task.parents if parents else ():
            if p.key.task_id in und:
                out[p.key.task_id] = p.key.step
        return out or None


def chunking(num_splits: int) -> tuple[int, int]:
    """(items per chunk, number of chunks) for a foreach variable of `num_splits` items."""
    chunk = max(1, math.ceil(num_splits / MAX_CHUNKS))
    return chunk, math.ceil(num_splits / chunk)


def starts_early(graph, outcome: TaskOutcome) -> bool:
    """Whether the next steps of a finished task may start on its values while its
    checkpoint is being written: never for a join, whose inputs must be durable."""
    return outcome.ok and bool(outcome.next_steps) and all(
        graph[s].type != "join" for s in outcome.next_steps)


class SplitRange:
    """`count` consecutive splits of a `Fanout`, from split `start`, as the batch's tasks: a
    sequence of ReadyTasks made only when asked for (a retry, a failure), so a batch of
    fresh splits costs the driver one object, not one per split."""

    __slots__ = ("fan", "start", "count")

    def __init__(self, fan, start: int, count: int):
        self.fan, self.start, self.count = fan, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int):
        if not 0 <= k < self.count:
            raise IndexError(k)
        return self.fan.task_at(self.start + k)

    def __iter__(self):
        for k in range(self.count):
            yield self.fan.task_at(self.start + k)


class SplitSpecs:
    """The TaskSpecs of a `SplitRange`, sent as one template and an index range: the worker
    makes each split's spec from them (`__getitem__`, `__iter__`), so neither side pickles a
    spec per split. The same sequence interface as a list of specs."""

    def __init__(self, template: TaskSpec, split_step: str, num_splits: int, first_id: int,
                 start: int, count: int, chunk: int, chunk_refs: list, first_chunk: int,
                 var: str, sha: str):
        self.template, self.split_step, self.num_splits = template, split_step, num_splits
        self.first_id, self.start, self.count = first_id, start, count
        self.chunk, self.chunk_refs, self.first_chunk = chunk, chunk_refs, first_chunk
        self.var, self.sha = var, sha
        self._made: list | None = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_made"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._made = None

    def __len__(self) -> int:
        return self.count

    def _spec(self, k: int) -> TaskSpec:
        t, i = self.template, self.start + k
        spec = TaskSpec(t.step, str(self.first_id + i), t.attempt,
                        t.foreach_stack + ((self.split_step, i, self.num_splits),),
                        t.view, parents=t.parents, awaits=t.awaits, fallback=t.fallback)
        spec.item = ItemLoc(self.chunk_refs[i // self.chunk - self.first_chunk],
                            i % self.chunk, self.var, self.sha, i)
        return spec

    def specs(self) -> list[TaskSpec]:
        """Every spec, made once (in the worker, which runs them all)."""
        if self._made is None:
            self._made = [self._spec(k) for k in range(self.count)]
        return self._made

    def __getitem__(self, k: int) -> TaskSpec:
        if not 0 <= k < self.count:
            raise IndexError(k)
        return self._made[k] if self._made is not None else self._spec(k)

    def __iter__(self):
        return iter(self.specs()) if self._made is not None else \
            (self._spec(k) for k in range(self.count))


class RetryQueue:
    """Tasks waiting out their @retry delay: a heap ordered by when each is due (ties in the
    order they failed)."""

    def __init__(self):
        self._heap: list = []
        self._seq = 0

    def push(self, due: float, task, attempt: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, task, attempt))

    def pop_due(self, now: float) -> list[tuple]:
        """(task, attempt) of every task due by `now`, earliest first."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            _, _, task, attempt = heapq.heappop(self._heap)
            out.append((task, attempt))
        return out

    def __len__(self) -> int:
        return len(self._heap)
