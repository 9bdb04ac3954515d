"""Resume: run a flow again, reusing every task of an earlier run that needs no re-run.

The CLI (or any caller) asks for a resume with values only: a `ResumeRequest` naming the origin
run (or none: the latest one in a namespace) and the step to re-run from (or none). This module
owns everything after that: finding the origin run, its parameter values, and cloning.

A task is *cloned* from the origin run when the origin has it DONE, every one of its parents
was cloned too, and its step is not at or after the step the user asked to re-run. Cloning
writes a new task record that points at the same content-addressed blobs (zero blob bytes are
copied) and carries `origin_pathspec`. Anything else runs again: the failed step, everything
downstream of it, and, inside a foreach, the splits that failed or never finished.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..exceptions import RayflowException
from .artifacts import ArtifactLoc
from .flowfile import step_code_hashes
from .scheduler import ReadyTask, TaskKey, structural_key

FLUSH_EVERY = 500


@dataclass(frozen=True)
class ResumeRequest:
    origin_run_id: str | None = None   # None: the latest run in `namespace`
    step: str | None = None            # re-run from this step (and all after it)
    # Where the latest run is looked for: None means your own runs (user:<you>), "*" any run.
    namespace: str | None = None
    # Clone a finished task even when its step's code changed since the origin run (what
    # Metaflow does); by default such a step runs again, with everything after it.
    clone_changed: bool = False


@dataclass(frozen=True)
class ClonedTask:
    """What the scheduler needs to know of a task taken from the origin run."""

    next_steps: tuple[str, ...]
    foreach: str | None
    num_splits: int | None
    own: dict[str, ArtifactLoc]


@dataclass
class ResumePlan:
    origin_run_id: str
    params: dict
    cloner: Cloner
    warnings: list[str] = dataclasses.field(default_factory=list)


def plan_resume(ds, flow, request: ResumeRequest) -> ResumePlan:
    """Find the origin run of `flow` (a LoadedFlow) in `ds` and what to clone from it."""
    if request.step is not None:
        _downstream(flow.graph, request.step)  # a bad step name fails before anything runs
    origin = request.origin_run_id
    if origin is None:
        namespace = request.namespace
        if namespace is None:
            from ..client import get_username

            namespace = f"user:{get_username()}"
        origin = latest_run_id(ds, flow.name, None if namespace == "*" else namespace)
    params = origin_parameters(ds, origin, flow.cls, flow.graph.start_step)
    cloner = Cloner(ds, origin, flow.graph, request.step)
    warnings = still_running(ds, origin)
    changed = cloner.changed_steps(step_code_hashes(flow.cls, flow.graph))
    if changed:
        warnings.append(changed_note(flow.name, origin, changed, request.clone_changed))
        if not request.clone_changed:
            cloner.rerun |= set().union(*(_downstream(flow.graph, s) for s in changed))
    return ResumePlan(origin, params, cloner, warnings)


def changed_note(flow_name: str, origin: str, changed: list[str], clone: bool) -> str:
    """One line naming the steps whose code changed since the origin run."""
    steps = ", ".join(changed)
    if clone:
        return (f"Code changed since {flow_name}/{origin} in step(s) {steps}: their finished "
                f"tasks are reused as computed by the old code (--clone-changed).")
    return (f"Code changed since {flow_name}/{origin} in step(s) {steps}: they run again, with "
            f"every step after them (--clone-changed reuses what the old code computed).")


def still_running(ds, origin_run_id: str) -> list[str]:
    """A warning when the origin run's driver is still at work: what it finishes from now on
    is not cloned, and what it is running now runs twice."""
    import time

    from ..datastore.lease import describe

    rec = ds.read_run(origin_run_id)
    if rec is None or ds.run_status(rec) != "running":
        return []
    lease = ds.read_lease(origin_run_id)
    try:
        ago = f", last heard from {max(0.0, time.time() - float(lease['at'])):.0f} s ago"
    except (KeyError, TypeError, ValueError):
        ago = ""
    return [f"Warning: run {rec.pathspec} is still running (its driver is "
            f"{describe(lease)}{ago}). Its tasks that are not finished yet run again in this "
            f"resume, and what it finishes from now on is not reused. Wait for it to end, or "
            f"stop that driver first."]


class Cloner:
    """Decides, task by task, whether the origin run's result can be reused, and writes the
    records of the tasks it reuses (in bundles, `FLUSH_EVERY` at a time)."""

    def __init__(self, ds, origin_run_id: str, graph, rerun_step: str | None = None):
        self.ds = ds
        self.origin = origin_run_id
        self.graph = graph
        self.rerun = _downstream(graph, rerun_step) if rerun_step else set()
        self.cloned: set[TaskKey] = set()
        self._done: dict[str, dict] = {}
        self._pending: list = []
        self._verified: set[str] = set()
        self.run_id: str | None = None  # the new run's id, set by `begin`

    def may_clone_all(self) -> bool:
        """Whether every task should be cloned: the origin run finished, and no step is to
        run again (its artifacts are checked only as tasks are cloned)."""
        if self.rerun:
            return False
        rec = self.ds.read_run(self.origin)
        return rec is not None and self.ds.run_status(rec) == "success"

    def begin(self, run_id: str) -> None:
        self.run_id = run_id

    @property
    def count(self) -> int:
        return len(self.cloned)

    def _origin_done(self, step: str) -> dict:
        """The origin's finished tasks of `step`, by what names them across runs (their
        split indices and iteration): task ids are handed out afresh in each run."""
        recs = self._done.get(step)
        if recs is None:
            recs = self._done[step] = {
                structural_key(rec.foreach_stack, rec.iteration): rec
                for rec in self.ds.done_records(self.origin, step).values()}
        return recs

    def changed_steps(self, code_hashes: dict[str, str]) -> list[str]:
        """The steps, in graph order, whose finished tasks in the origin ran code other than
        the step has now (their records keep its hash). A step the origin did not finish, or
        recorded without a hash, counts as unchanged: nothing of it is reused anyway."""
        out = []
        for step in self.graph.steps:
            now = code_hashes.get(step)
            if not now or step in self.rerun:
                continue
            recorded = next((r.code_hash for r in self._origin_done(step).values()
                             if r.code_hash), None)
            if recorded is not None and recorded != now:
                out.append(step)
        return out

    def can_clone(self, task: ReadyTask) -> bool:
        """Whether `try_clone` would clone `task` (a gang is cloned only whole)."""
        return self._reusable(task) is not None

    def _reusable(self, task: ReadyTask):
        if task.step in self.rerun:
            return None
        if any(p.key not in self.cloned for p in task.parents):
            return None
        rec = self._origin_done(task.step).get(structural_key(task.stack, task.iteration))
        if rec is None or rec.status != "success" or not self._intact(rec):
            return None
        return rec

    def try_clone(self, task: ReadyTask) -> ClonedTask | None:
        """Clone `task` from the origin run if it may be; None when it must run again."""
        rec = self._reusable(task)
        if rec is None:
            return None
        self._write_clone(task, rec)
        self.cloned.add(task.key)
        trans = rec.transition or {}
        own = {n: ArtifactLoc.from_info(n, info) for n, info in rec.artifacts.items()}
        return ClonedTask(tuple(trans.get("steps") or ()), trans.get("foreach"),
                          rec.foreach_num_splits, own)

    def _intact(self, rec) -> bool:
        """A task is reused only when every artifact it holds is there and matches its hash,
        a value kept inline in its record as much as a blob: a damaged one (a blob is removed
        as it is found) makes the task run again, which writes it anew. Each blob is read once
        per resume; an inline value is checked in its record, where it lives."""
        for info in rec.artifacts.values():
            if info.inline is None and info.sha in self._verified:
                continue
            if not self.ds.artifacts.intact(info):
                return False
            if info.inline is None:
                self._verified.add(info.sha)
        return True

    def _write_clone(self, task: ReadyTask, rec) -> None:
        flow = self.ds.flow_name
        parents = [f"{flow}/{self.run_id}/{p.key.step}/{p.key.task_id}" for p in task.parents]
        clone = dataclasses.replace(rec, run_id=self.run_id, task_id=task.task_id,
                                    parents=parents,
                                    origin_pathspec=rec.origin_pathspec or rec.pathspec)
        self._pending.append(clone)
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write buffered clone records, grouped per step (a bundle per step)."""
        by_step: dict[str, list] = {}
        for rec in self._pending:
            by_step.setdefault(rec.step, []).append(rec)
        self._pending = []
        for recs in by_step.values():
            self.ds.write_tasks(recs, bundle=len(recs) > 1)


def _downstream(graph, step: str) -> set[str]:
    if step not in graph:
        raise RayflowException(
            f"Cannot resume from step {step!r}: flow {graph.name} has no such step. Its steps: "
            f"{', '.join(graph.steps)}.")
    out, todo = set(), [step]
    while todo:
        s = todo.pop()
        if s in out:
            continue
        out.add(s)
        todo.extend(graph[s].out_funcs)
    return out


def latest_run_id(ds, flow_name: str, namespace: str | None) -> str:
    """The newest run of the flow in `namespace` (None: any run)."""
    for run_id in ds.list_run_ids():
        rec = ds.read_run(run_id)
        if rec is None:
            continue
        if namespace is None or namespace in (list(rec.tags) + list(rec.sys_tags)):
            return run_id
    where = f" in namespace {namespace!r}" if namespace else ""
    raise RayflowException(
        f"Flow {flow_name} has no run{where} in the datastore {ds.url} to resume. Run it first "
        f"with `rayflow run`, or name one with --origin-run-id.")


def origin_parameters(ds, origin_run_id: str, flow_cls, start_step: str = "start") -> dict:
    """The origin run's parameter values: from its start task's artifacts when it finished
    (exact values), else from the run record (JSON). The parameters are those of the flow as
    its mutators leave it for the origin's configs."""
    from ..config import as_config_value, flow_configs
    from ..datastore.records import DamagedRecordError
    from ..parameters import flow_parameters
    from ..user_decorators.process import mutated_class

    configs = {c.artifact_name: c for c in flow_configs(flow_cls)}  # by artifact name
    try:
        start = ds.read_task(origin_run_id, start_step, "0")
    except DamagedRecordError:  # start runs again; the run record has the values
        start = None
    run = None
    if start is None or start.status != "success" or not all(n in start.artifacts
                                                             for n in configs):
        run = ds.read_run(origin_run_id)
        if run is None:
            raise RayflowException(
                f"Run {flow_cls.__name__}/{origin_run_id} does not exist in {ds.url}. Check "
                f"--origin-run-id and --datastore.")

    def read(names: list[str]) -> dict:
        if run is None and all(n in start.artifacts for n in names):
            return {n: ds.load_artifact(start.artifacts[n],
                                        f"parameter {n} of {start.pathspec}") for n in names}
        rec = run or ds.read_run(origin_run_id)
        return {n: as_config_value(rec.params.get(n), configs[n].plain) if n in configs
                else rec.params.get(n) for n in names}

    values = read(list(configs))
    cls = mutated_class(flow_cls, {configs[n].name: v for n, v in values.items()})
    return {**values, **read([p.artifact_name for p in flow_parameters(cls)])}
