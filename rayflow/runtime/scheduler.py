"""The scheduler: a plain state machine that knows which tasks are ready. No Ray here.

How tasks are chosen
--------------------
Every task is identified by its step and its *foreach stack*: one `Frame` per enclosing
foreach, outermost first, holding the split step, the split's index and the number of splits
(and, for a step a recursive switch runs again, its `iteration`). That is what resume matches
a task to its earlier attempt by. Its *task id* is a number unique in the run, as Metaflow's
are: the scheduler hands them out in the order tasks become ready ("0" is start), and a
foreach takes a block of N consecutive ids when it fans out, so split i of it is first + i
and a 100,000-way foreach costs one counter step, not 100,000.

When a task finishes, `task_done` looks at the step's transition in the graph:
- a linear edge into a non-join step makes one task with the same stack;
- a static split makes one task per branch, each with the same stack;
- a foreach split returns a `Fanout`: N splits of the target step, expanded lazily by the
  caller so that a 100,000-way foreach costs the scheduler O(1) memory until it is submitted;
- a switch makes one task, of the case it chose; a case that runs the switch's own step
  again (recursion) makes a task of the same step and stack with its `iteration` one higher,
  so each run of the step is a task of its own;
- an edge into a join parks the finished task in a bucket, at its slot: a static join waits
  for one task from each branch of its split with the same stack (slot = the branch's place
  among the join's in-steps; a branch with a switch in it may arrive from any of its cases);
  a foreach join waits for all N splits that share the stack without its last frame (slot =
  the split's index). The bucket releases one `ReadyTask` when it is full. The runtime's
  bucket keeps its inputs as columns (`runtime/joins.py`), so a million-way join costs flat
  arrays rather than a million links.

Each finished task carries an opaque `scope` (the runtime keeps its artifact locations there);
the scheduler passes it on to the children and join buckets and never looks inside. Nothing
else is kept per task, so memory falls as tasks finish.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Iterator

from ..exceptions import InvalidNextError

Frame = tuple  # (split_step: str, index: int, num_splits: int)


def structural_key(stack, iteration: int = 0) -> tuple:
    """What names a task of a step across runs of the flow: its split indices, outermost
    first, and its iteration (for a step a recursive switch ran again)."""
    return (tuple(int(f[1]) for f in stack), int(iteration))


@dataclass(frozen=True, slots=True)
class TaskKey:
    step: str
    task_id: str

    def __str__(self) -> str:
        return f"{self.step}/{self.task_id}"


@dataclass(slots=True)
class ParentLink:
    """A finished parent task, with the opaque scope the runtime attached to it."""

    key: TaskKey
    scope: Any


@dataclass(slots=True)
class ReadyTask:
    step: str
    stack: tuple[Frame, ...]
    parents: list[ParentLink]
    is_join: bool = False
    # For a foreach split: which parent fanned out, and over which artifact.
    split_parent: TaskKey | None = None
    foreach_var: str | None = None
    fanout: Any = None  # the Fanout a split came from (the runtime keeps its chunk refs there)
    iteration: int = 0  # how many times a recursive switch ran this step before, here
    task_id: str = ""   # unique in the run, given by the scheduler

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.step, self.task_id)

    @property
    def split_index(self) -> int | None:
        return self.stack[-1][1] if self.split_parent is not None else None


@dataclass(slots=True)
class Fanout:
    """N splits of `step`, made lazily. `splits()` yields ReadyTasks in index order."""

    step: str
    parent: ParentLink
    stack: tuple[Frame, ...]
    split_step: str
    foreach_var: str
    num_splits: int
    next_index: int = 0
    chunk: int = 1          # items per chunk of the foreach variable (set by the runtime)
    chunk_refs: Any = None  # object refs of those chunks (set by the runtime)
    var_sha: str = ""       # the foreach variable's hash, for each split's lineage
    shapes: Any = None      # per-split Ray options, when resources depend on the item
    first_id: int = 0       # split i's task id is first_id + i
    chunk_left: Any = None  # per chunk, its splits not yet streamed into the join

    def splits_done(self, start: int, count: int) -> None:
        """Splits `start` .. `start + count - 1` finished and went into their join as a batch
        (runtime/fanout.py): a chunk of the foreach variable all of whose splits did is let
        go (none of them runs again in this run), so the driver does not keep the variable's
        items, in Ray's memory store, until the end of the foreach."""
        refs, left, c = self.chunk_refs, self.chunk_left, self.chunk
        if refs is None or not isinstance(refs, list):
            return
        if left is None:
            left = self.chunk_left = array("I", [c]) * len(refs)
            left[-1] = self.num_splits - c * (len(refs) - 1)
        i, end = start, start + count
        while i < end:
            k = i // c
            step = min(end, (k + 1) * c) - i
            left[k] -= step
            if left[k] == 0:
                refs[k] = None
            i += step

    def take(self, n: int) -> list[ReadyTask]:
        start, count = self.take_range(n)
        return [self.task_at(i) for i in range(start, start + count)]

    def take_range(self, n: int) -> tuple[int, int]:
        """The next `n` splits (fewer at the end), as (first index, count)."""
        start = self.next_index
        self.next_index = min(self.num_splits, start + n)
        return start, self.next_index - start

    def task_at(self, i: int) -> ReadyTask:
        frame = (self.split_step, i, self.num_splits)
        return ReadyTask(self.step, self.stack + (frame,), [self.parent],
                         split_parent=self.parent.key, foreach_var=self.foreach_var,
                         fanout=self, task_id=str(self.first_id + i))

    @property
    def remaining(self) -> int:
        return self.num_splits - self.next_index


@dataclass(slots=True)
class TaskDone:
    """What the scheduler needs to know about a finished task."""

    step: str
    stack: tuple[Frame, ...]
    next_steps: tuple[str, ...]
    foreach: str | None = None
    num_splits: int | None = None
    scope: Any = None
    iteration: int = 0
    task_id: str = ""

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.step, self.task_id)


class LinkBucket:
    """The inputs of one join as they arrive, kept as links (slot -> ParentLink). The runtime
    gives the scheduler a columnar bucket instead (`runtime.joins.JoinTable`), with the same
    `add`, `full` and the inputs in slot order as the join's parents."""

    def __init__(self, join_node, expected: int):
        self.expected = expected
        self.arrived: dict[int, ParentLink] = {}

    def add(self, slot: int, link: ParentLink) -> None:
        if slot in self.arrived:
            raise RuntimeError(f"task {link.key} arrived twice at a join (input {slot})")
        self.arrived[slot] = link

    @property
    def full(self) -> bool:
        return len(self.arrived) == self.expected

    def parents(self) -> list[ParentLink]:
        return [self.arrived[i] for i in range(self.expected)]


def _branch_of(node) -> str:
    """Which branch of the innermost open split `node` hands its task on in (a join has
    closed its own split: the branch is that of the split around it)."""
    branches = node.split_branches[:-1] if node.join_of else node.split_branches
    return branches[-1]


class Scheduler:
    """`new_bucket(join_node, expected)` makes the bucket a join's inputs wait in (default: a
    `LinkBucket`); a full bucket's `parents()` become the join's parents."""

    def __init__(self, graph, new_bucket=None):
        self.graph = graph
        self._new_bucket = new_bucket or LinkBucket
        self._buckets: dict[tuple, Any] = {}
        self.finished = False
        self._next_id = 0

    def _new_id(self) -> str:
        tid = self._next_id
        self._next_id += 1
        return str(tid)

    def _reserve(self, n: int) -> int:
        first = self._next_id
        self._next_id += n
        return first

    def start(self) -> list[ReadyTask]:
        return [ReadyTask(self.graph.start_step, (), [], task_id=self._new_id())]

    def task_done(self, done: TaskDone) -> Iterator[ReadyTask | Fanout]:
        """Record a finished task; yield what became ready because of it."""
        node = self.graph[done.step]
        self._check_transition(node, done)
        if node.is_end:
            self.finished = True
            return
        link = ParentLink(done.key, done.scope)
        if done.foreach is not None:
            target = node.out_funcs[0]
            if done.num_splits == 0:
                yield from self._arrive_empty_foreach(node, done, link)
                return
            yield Fanout(target, link, done.stack, done.step, done.foreach, done.num_splits,
                         first_id=self._reserve(done.num_splits))
            return
        if node.is_switch:
            (target,) = done.next_steps
            if target == node.name:  # recursion: the same step again, one iteration on
                yield ReadyTask(target, done.stack, [link], iteration=done.iteration + 1,
                                task_id=self._new_id())
            else:
                yield from self._arrive(target, done, link)
            return
        for target in node.out_funcs:
            yield from self._arrive(target, done, link)

    def _arrive(self, target: str, done: TaskDone, link: ParentLink) -> Iterator[ReadyTask]:
        tnode = self.graph[target]
        if tnode.type != "join":
            yield ReadyTask(target, done.stack, [link], task_id=self._new_id())
            return
        if tnode.is_foreach_join:
            outer, frame = done.stack[:-1], done.stack[-1]
            slot, expected = frame[1], frame[2]
        else:
            # One task per branch of the split, whichever case of a switch it came through.
            branches = self._branches(tnode)
            outer, expected = done.stack, len(branches)
            slot = branches.index(self._arrival_branch(done.step, tnode))
        bucket = self._buckets.get((target, outer))
        if bucket is None:
            bucket = self._buckets[(target, outer)] = self._new_bucket(tnode, expected)
        bucket.add(slot, link)
        if bucket.full:
            del self._buckets[(target, outer)]
            yield ReadyTask(target, outer, bucket.parents(), is_join=True,
                            task_id=self._new_id())

    def segment_done(self, step: str, outer: tuple, expected: int, add) -> Iterator[ReadyTask]:
        """Splits of `step` (a foreach's splits, below the frames `outer`) finished together
        into the join that closes their foreach: `add(bucket)` puts them into its bucket
        (as one segment, runtime/fanout.py). Yields the join once its bucket is full."""
        target = self.graph[step].out_funcs[0]
        bucket = self._buckets.get((target, outer))
        if bucket is None:
            bucket = self._buckets[(target, outer)] = self._new_bucket(self.graph[target],
                                                                       expected)
        add(bucket)
        if bucket.full:
            del self._buckets[(target, outer)]
            yield ReadyTask(target, outer, bucket.parents(), is_join=True,
                            task_id=self._new_id())

    def _arrival_branch(self, step: str, join_node) -> str:
        """The branch of the join's split that a task of `step` arrives on (a split that
        leads straight into its join is that branch itself)."""
        if step == join_node.join_of:
            return join_node.name
        return _branch_of(self.graph[step])

    def _branches(self, join_node) -> tuple[str, ...]:
        """The branches a static join waits for, in the order of its in-steps."""
        return tuple(dict.fromkeys(self._arrival_branch(p, join_node)
                                   for p in join_node.in_funcs))

    def _arrive_empty_foreach(self, node, done: TaskDone, link: ParentLink):
        """A foreach over nothing: its join runs at once, with no inputs."""
        join = node.matching_join
        yield ReadyTask(join, done.stack, [], is_join=True, task_id=self._new_id())

    def _check_transition(self, node, done: TaskDone) -> None:
        if node.is_end:
            return
        if node.is_switch:
            if len(done.next_steps) == 1 and done.next_steps[0] in node.out_funcs and \
                    done.foreach is None:
                return
            cases = ", ".join(f"self.{s}" for s in node.out_funcs)
            raise InvalidNextError(
                f"Step {node.name!r} ({node.source_file}:{node.next_lineno}) is a switch over "
                f"{cases}, but at run time it went to "
                f"{', '.join(done.next_steps) or 'nothing'}. A switch must take one of the "
                f"cases written in its self.next().", step=node.name, line=node.next_lineno,
                file=node.source_file)
        expected = tuple(node.out_funcs)
        if tuple(done.next_steps) != expected or (done.foreach or None) != node.foreach_param:
            got = ", ".join(f"self.{s}" for s in done.next_steps) or "nothing"
            want = ", ".join(f"self.{s}" for s in expected)
            if node.foreach_param:
                want += f", foreach={node.foreach_param!r}"
            if done.foreach:
                got += f", foreach={done.foreach!r}"
            raise InvalidNextError(
                f"Step {node.name!r} ({node.source_file}:{node.next_lineno}) called "
                f"self.next({got}) at run time, but its code says self.next({want}). A step must "
                f"always take the transition written in its last line.",
                step=node.name, line=node.next_lineno, file=node.source_file)

    @property
    def open_joins(self) -> int:
        return len(self._buckets)
