"""The run loop, in the driver: drives one run of a flow from start to end on an executor.

`RunLoop` (not `rayflow.Runner`, Metaflow's Runner API, which starts a `rayflow run`
subprocess) owns the run's lifetime: the run record, the RunContext sent to workers, the loop
that feeds ready tasks to the executor in bounded windows and hands finished ones to the
scheduler, retries with their delays, the tasks' held console lines (console.py), and the
final status. It holds artifact *locations* (refs and hashes), never artifact bytes. Batch
sizes are `batching.py`'s; resuming, `resume.py`'s; where a batch runs, the executor's; joining
Ray, `ray_session.py`'s; the final status, heartbeat, report and run-id files, `run_record.py`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from dataclasses import dataclass, field

from ..config import apply_configs, config_values_of, resolve_delayed
from ..datastore.resolve import datastore_env
from ..decorators import StepDecorators, parse_with_spec, prepare_step_decorators
from ..exceptions import UnsaveableArtifactError
from ..exit_hook import exit_hooks_of, run_exit_hooks
from ..parameters import flow_constants, params_as_json
from ..project import resolve_project
from ..user_decorators.process import mutated_class, original_class
from .artifacts import ArtifactLoc, Scope
from .batching import (
    BatchMaker,
    BatchResult,
    BatchSizer,
    RetryQueue,
    chunking,
    starts_early,
)
from .console import show as show_console
from .crash import remove_run_spool
from .deferred import executor_for, session_context
from .errors import ErrorKind, TaskError
from .executor import Executor
from .fanout import (
    DRIVER_BYTES_PER_SPLIT,
    STREAMED_BYTES_PER_SPLIT,
    BatchSummary,
    check_width_fits_memory,
    join_adder,
)
from .flowfile import LoadedFlow, display_path, flow_code_hash, graph_of, step_code_hashes
from .gang import GangRunner
from .joins import JoinTable
from .progress import Progress
from .ray_session import RaySession
from .resume import Cloner, ResumeRequest, plan_resume
from .run_record import (
    Heartbeat,
    finish_run_record,
    username,
    version_tags,
    write_run_id_file,
    write_run_report,
)
from .scheduler import Fanout, ReadyTask, Scheduler, TaskDone
from .spec import RunContext, TaskOutcome


@dataclass
class RunOptions:
    datastore_url: str
    address: str | None = None
    tags: list[str] = field(default_factory=list)
    with_decorators: list[str] = field(default_factory=list)
    executor: str = "ray"            # "ray" or "inline"
    max_in_flight: int | None = None
    progress: bool = True
    namespace: str | None = None
    user: str | None = None
    resume: ResumeRequest | None = None  # set: resume that run instead of starting afresh
    run_id: str | None = None
    run_id_file: str | None = None   # the run id is written here as soon as the run starts
    # JSON {flow_name, run_id, datastore}, written with the run id: how `rayflow.Runner`
    # finds the run its subprocess started.
    runner_attribute_file: str | None = None
    branch: str | None = None        # @project's --branch (None: METAFLOW_BRANCH or none)
    production: bool | None = None   # @project's --production (None: METAFLOW_PRODUCTION)
    max_num_splits: int | None = None  # --max-num-splits: a wider foreach fails (None: no cap)
    max_log_bytes: int | None = None   # --max-log-size: each task keeps this much of a stream
    warm: bool = True  # False (--no-warm): an embedded Ray, not the warm local one


@dataclass
class RunSummary:
    flow: str
    run_id: str
    status: str
    wall_seconds: float | None  # the run's one duration (report.failures.run_duration)
    tasks_done: int
    tasks_failed: int
    tasks_cloned: int = 0
    failures: list = field(default_factory=list)
    datastore: str = ""
    flow_file: str = ""
    report: str | None = None  # where the run report is (a file path, or a URL)
    # An actor-pool run: (time, pool, actors) at every change of a pool's size.
    pool_history: list | None = None
    printed: int = 0  # lines the tasks wrote to the console, each with its [run/step/task] prefix

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def successful(self) -> bool:
        return self.status == "success"


class RunLoop:
    """One run. `params` are the parameter values; for a resume (`options.resume`) they are
    the origin run's, and `params` may be None."""

    def __init__(self, flow: LoadedFlow, params: dict | None, options: RunOptions,
                 executor: Executor | None = None):
        self.flow = flow
        self.graph = flow.graph
        self.params = params or {}
        self.opts = options
        self.extra_decorators = [parse_with_spec(s) for s in options.with_decorators]
        self.decos: dict[str, StepDecorators] = {}
        if options.resume is None:  # a resume builds them once it has the origin's configs
            self._build_decorators()
        # A join's inputs wait as columns, not as a link and a scope per input.
        self.scheduler = Scheduler(self.graph,
                                   new_bucket=lambda node, n: JoinTable(n, node.join_of))
        self.queue: deque = deque()
        self.retries = RetryQueue()
        self.failures: list[TaskOutcome] = []
        self.done_count = 0
        self.stopping = False
        self.progress = Progress(enabled=options.progress, graph=self.graph)
        self.executor = executor
        self.cloner: Cloner | None = None
        self.origin_run_id: str | None = None
        # Tasks whose values were handed to the next steps while their checkpoints are still
        # being written: task id -> (step, the task's own artifact locations in its Scope).
        self.undurable: dict[str, tuple[str, dict]] = {}
        self.printed = 0  # lines the run's tasks wrote to the console
        self.session = RaySession()  # the Ray joined, once `executor_for` has joined one
        self.machine: dict | None = None  # the one machine's resources, on a local Ray
        self.clamped: set[str] = set()    # steps whose resources were cut to fit it
        self.gangs = GangRunner(self)     # the @parallel steps' gangs

    def _build_decorators(self) -> None:
        """Each step's decorators, those that read configs built from this run's; a flow with
        mutators is first prepared for these configs (see rayflow/user_decorators)."""
        base = original_class(self.flow.cls)
        apply_configs(base, self.params)
        configs = config_values_of(base)
        cls = mutated_class(base, configs, self.opts.with_decorators)
        if cls is not self.flow.cls:
            self.flow = LoadedFlow(self.flow.file, self.flow.module_name, cls, graph_of(cls))
            self.graph = self.flow.graph
        self.decos = {s: StepDecorators.for_step(getattr(cls, s), self.extra_decorators,
                                                 configs)
                      for s in self.graph.steps}
        self.secrets = prepare_step_decorators(self.graph, self.decos)

    # ------------------------------------------------------------------------------ set-up
    def run(self) -> RunSummary:
        t0 = time.time()
        self._open()
        self.batches = BatchMaker(self.flow.name, self.run_id, self.undurable)
        # Connect (and let the cluster refuse this datastore) before the run record exists, so
        # a refused or unreachable cluster leaves no run that looks forever "running".
        if self.executor is None:
            self.executor = executor_for(self)
        from ..report.graph import step_info
        from ..report.rows import TaskRows

        self.graph_info = step_info(self.graph, self.decos)
        self.rows = TaskRows(self.graph.steps)
        record = self._write_run_record("running", t0)
        heartbeat = Heartbeat(self.ds, self.run_id)
        try:
            self._write_run_id_files()
            self.ctx = self._make_context()
            self.executor.start(self.ctx)
            self.executor.watch(self._queued_steps, self.progress.waiting)
            self.sizer = BatchSizer(self.executor.total_cpus())
            self.max_in_flight = self.opts.max_in_flight or max(8, 2 * self.sizer.parallelism)
            self._enqueue(self.scheduler.start())
            self._loop()
        except BaseException:
            self.gangs.close()
            self.executor.shutdown()
            self.executor.close()
            heartbeat.stop()
            self._flush_clones()
            finish_run_record(self.ds, record, "failed", self.flow.file, self.rows)
            self._write_report()
            self._run_exit_hooks(successful=False)
            raise
        finally:
            heartbeat.stop()
            self.progress.close()
            remove_run_spool(self.flow.name, self.run_id)
        return self._finish(record, t0)

    def _open(self) -> None:
        """The datastore, the origin run of a resume, the run id, the user and the project."""
        from ..client.core import check_tag
        from ..datastore import FlowDataStore

        exit_hooks_of(self.flow.cls)  # a malformed @exit_hook fails the run before it starts
        for tag in self.opts.tags:  # as Metaflow checks a run's tags before it starts
            check_tag(tag, "tag the run with")
        self.ds = FlowDataStore.from_url(self.opts.datastore_url, self.flow.name)
        # A datastore that cannot be written fails the run here, before Ray starts (seconds).
        self.ds.storage.check_writable()
        if self.opts.resume is not None:
            plan = plan_resume(self.ds, self.flow, self.opts.resume)
            self.origin_run_id, self.params, self.cloner = \
                plan.origin_run_id, plan.params, plan.cloner
            self._build_decorators()  # the origin's configs
            self.progress.say(f"Resuming {self.flow.name}/{plan.origin_run_id}"
                              + (f" from step {self.opts.resume.step}"
                                 if self.opts.resume.step else ""))
            for warning in plan.warnings:
                self.progress.say(warning)
        self.run_id = self.opts.run_id or self.ds.new_run_id()
        if self.cloner is not None:
            self.cloner.begin(self.run_id)
        self.user = self.opts.user or username()
        configs = config_values_of(self.flow.cls)
        self.project = resolve_project(self.flow.cls, self.flow.name, self.user,
                                       self.opts.branch, self.opts.production,
                                       resolve_value=lambda v: resolve_delayed(v, configs))
        if self.project is not None:
            self.progress.say(f"Project: {self.project.project_name}, "
                              f"Branch: {self.project.branch_name}")

    def _finish(self, record, t0: float) -> RunSummary:
        self.gangs.close()
        self.executor.close()
        self._flush_clones()
        status = "success" if self.scheduler.finished and not self.failures else "failed"
        took = finish_run_record(self.ds, record, status, self.flow.file, self.rows)
        report = self._write_report()
        self._run_exit_hooks(successful=status == "success")
        cloned = self.cloner.count if self.cloner is not None else 0
        return RunSummary(self.flow.name, self.run_id, status, took,
                          self.done_count, len(self.failures), cloned,
                          self.failures, self.ds.url, self.flow.file, report,
                          getattr(self.executor, "history", None), self.printed)

    def _run_exit_hooks(self, successful: bool) -> None:
        """@exit_hook's functions, once the run's final status is written."""
        from ..client import Run

        run_exit_hooks(self.flow.cls, successful, lambda: Run(
            f"{self.flow.name}/{self.run_id}", datastore=self.ds.url, _namespace_check=False))

    def _write_run_id_files(self) -> None:
        if self.opts.run_id_file:
            write_run_id_file(self.opts.run_id_file, self.run_id)
        if self.opts.runner_attribute_file:
            write_run_id_file(self.opts.runner_attribute_file, json.dumps(
                {"flow_name": self.flow.name, "run_id": self.run_id,
                 "datastore": self.ds.url}), what="--runner-attribute-file")

    def _write_run_record(self, status: str, started: float):
        from ..datastore import RunRecord

        rec = RunRecord(
            flow=self.flow.name, run_id=self.run_id, user=self.user,
            params=params_as_json(self.params), tags=list(self.opts.tags),
            sys_tags=[f"user:{self.user}", "runtime:rayflow", *version_tags(),
                      *(self.project.sys_tags if self.project else [])],
            code_hash=flow_code_hash(self.flow.file), status=status, started_at=started,
            finished_at=None, flow_file=self.flow.file, origin_run_id=self.origin_run_id,
            datastore=self.ds.url, ray_address=self.session.address or self.opts.address,
            ray_kind=self.session.kind, project=self.project.to_json() if self.project else None,
            graph=self.graph_info, dashboard_url=self.session.dashboard_url)
        self.ds.write_run(rec)
        return rec

    def _write_report(self) -> str | None:
        # A run that finished has told the driver about every task: no records to read again.
        # One that failed may have left tasks the driver never heard of: read them.
        rows = self.rows if self.scheduler.finished and not self.failures else None
        return write_run_report(self.ds, self.run_id, self.graph_info, rows, self.progress.say,
                                getattr(self.executor, "log", None))

    def _flush_clones(self) -> None:
        if self.cloner is not None:
            self.cloner.flush()

    def _make_context(self) -> RunContext:
        # Parameters, the flow's class-level constants, its graph and `name` (Metaflow's
        # run.data.name) are artifacts of every task; the run's `_parameters` task keeps them.
        from .parameters_task import GRAPH_INFO, run_graph_info, write_parameters_task

        inherited = {"name": self.flow.cls.__name__, **flow_constants(self.flow.cls),
                     **self.params, GRAPH_INFO: run_graph_info(
                         self.flow.cls, self.graph, self.decos, self.extra_decorators)}
        try:
            infos = self.ds.save_artifacts(inherited) if inherited else {}
        except UnsaveableArtifactError as exc:
            raise UnsaveableArtifactError(
                f"Flow {self.flow.name} ({display_path(self.flow.file)}): class attribute or "
                f"parameter {exc}", artifact=exc.artifact) from None
        param_locs = {n: ArtifactLoc.from_info(n, i) for n, i in infos.items()}
        ctx = RunContext(
            flow_file=self.flow.file, module_name=self.flow.module_name,
            class_name=self.flow.cls.__name__, flow_name=self.flow.name, run_id=self.run_id,
            datastore_url=self.ds.url, params=dict(self.params), param_locs=param_locs,
            code_hashes=step_code_hashes(self.flow.cls, self.graph), user=self.user,
            tags=list(self.opts.tags), origin_run_id=self.origin_run_id,
            with_decorators=tuple(self.opts.with_decorators),
            namespace=self.opts.namespace, source_dir=os.path.dirname(self.flow.file),
            datastore_env=datastore_env(self.ds.url),
            project=self.project.to_json() if self.project else None,
            sys_tags=self.project.sys_tags if self.project else [],
            configs_key=json.dumps(config_values_of(self.flow.cls), sort_keys=True,
                                   default=repr),
            max_log_bytes=self.opts.max_log_bytes, secrets=self.secrets,
            environments={s: d.environment.lineage() for s, d in self.decos.items()
                          if d.environment is not None})
        ctx = session_context(ctx, self.session)
        write_parameters_task(self.ds, ctx, self.graph, infos)
        return ctx

    # -------------------------------------------------------------------------------- loop
    def _loop(self) -> None:
        while True:
            if not self.stopping:
                for task, attempt in self.retries.pop_due(time.time()):
                    self._submit([(task, attempt)], {})
                self._submit_ready()
            self.gangs.poll()
            if self.executor.in_flight == 0 and not self._has_pending_work():
                break
            for result in self.executor.wait(timeout=0.2):
                self._on_result(result)
            self.progress.tick()
        if not self.stopping and not self.scheduler.finished:
            raise RuntimeError("rayflow bug: the run stalled with no task ready or running")

    def _queued_steps(self) -> list[str]:
        """Steps of the tasks ready but not submitted yet, or waiting out a @retry delay."""
        return [i.step for i in self.queue] + [t.step for _, _, t, _ in self.retries._heap]

    def _has_pending_work(self) -> bool:
        return not self.stopping and (bool(self.queue) or bool(self.retries) or self.gangs.busy)

    def _enqueue(self, items) -> None:
        for item in items:
            if isinstance(item, Fanout):
                self._prepare_fanout(item)
                self.progress.add_total(item.step, item.num_splits)
            else:
                self.progress.add_total(item.step, 1)
            if not isinstance(item, Fanout) and self._cloned(item):
                continue
            self.queue.append(item)

    def _prepare_fanout(self, fan: Fanout) -> None:
        """Cut the foreach variable into chunks in the object store, one slicer task."""
        n = fan.num_splits
        check_width_fits_memory(fan.step, n, STREAMED_BYTES_PER_SPLIT if self.cloner is None
                                else DRIVER_BYTES_PER_SPLIT)
        chunk, num_chunks = chunking(n)
        loc = fan.parent.scope.get(fan.foreach_var)
        fan.var_sha = loc.sha
        fan.chunk = chunk
        fan.chunk_refs = self.executor.slice(loc, chunk, num_chunks)

    def _submit_ready(self) -> None:
        flat_cache: dict[int, dict] = {}
        while self.queue and self.executor.in_flight < self.max_in_flight:
            item = self.queue.popleft()
            if isinstance(item, Fanout) and self.gangs.takes(item):
                continue
            if isinstance(item, Fanout):
                decos = self.decos[item.step]
                one_at_a_time = bool(decos.timeout_seconds) or item.shapes is not None
                size = self.sizer.size(item.step, item.remaining, one_at_a_time)
                if self.cloner is None:  # fresh splits: an index range, no object per split
                    start, count = item.take_range(size)
                    if item.remaining:
                        self.queue.append(item)
                    self._submit_batch(self.batches.make_range(item, start, count, decos,
                                                               flat_cache))
                    continue
                tasks = item.take(size)
                if item.remaining:
                    self.queue.append(item)  # round-robin with other ready steps
                tasks = [t for t in tasks if not self._cloned(t)]
                if not tasks:
                    continue
                self._submit([(t, 0) for t in tasks], flat_cache)
            else:
                self._submit([(item, 0)], flat_cache)

    def _cloned(self, task: ReadyTask) -> bool:
        """Take `task` from the origin run when resuming and the cloner allows it."""
        if self.cloner is None:
            return False
        clone = self.cloner.try_clone(task)
        if clone is None:
            return False
        self.progress.submitted(task.step, 1)
        self.progress.finished(task.step, 1, 0)
        self.rows.final(task.step, 0, True, cloned=True)
        self.complete(task, clone.next_steps, clone.foreach, clone.num_splits, clone.own)
        return True

    def _submit(self, tasks_attempts: list, flat_cache: dict, fallback: bool = False) -> None:
        self._submit_batch(self.batches.make(
            tasks_attempts, self.decos[tasks_attempts[0][0].step], flat_cache, fallback))

    def _submit_batch(self, batch) -> None:
        if self.machine is not None:
            self._fit_machine(batch)
        self.executor.submit(batch)
        self.progress.submitted(batch.step, len(batch.specs))

    def _fit_machine(self, batch) -> None:
        """On a Ray of this machine alone, a step asking for more than the machine has runs
        with what it has (one line per step says so) instead of waiting for a node that
        will never come."""
        from .cluster import clamp_to_machine, describe_clamp

        batch.options, cut = clamp_to_machine(batch.options, self.machine)
        if cut and batch.step not in self.clamped:
            self.clamped.add(batch.step)
            self.progress.say(describe_clamp(batch.step, cut))

    # --------------------------------------------------------------------------- results
    def _on_result(self, result: BatchResult) -> None:
        if result.batch.gang is not None:
            return self.gangs.on_result(result)
        if result.phase == "delivered":
            # The steps ran; their values are in the object store and their checkpoints are
            # being written. The next steps may start now, except a join: a join's inputs
            # must be durable before it runs.
            for task, outcome in zip(result.batch.tasks, result.outcomes):
                if outcome is not None and starts_early(self.graph, outcome):
                    self._hand_on(task, outcome, result.payload_ref)
            return
        if isinstance(result.outcomes, BatchSummary):
            self._on_splits_joined(result.batch, result.outcomes)
            return
        if result.outcomes is not None:
            self.sizer.record(result.batch.step, result.outcomes)
        for task, attempt, outcome, error in result.per_task():
            early = self.undurable.pop(task.task_id, None)
            if early is not None:
                self._on_durable(task, attempt, outcome, error, early[1])
            elif outcome is not None and outcome.ok:
                self._on_success(task, outcome, result.payload_ref)
            else:
                self._on_failure(task, attempt, error, outcome)

    def _on_splits_joined(self, batch, summary: BatchSummary) -> None:
        """A batch of splits that all went into their join (runtime/fanout.py): counted,
        shown, and handed to the join as one segment, with no object per split."""
        self.sizer.record_span(batch.step, summary.count, summary.finished - summary.started)
        self.rows.batch(summary, int(batch.specs.first_id) + batch.specs.start)
        show_console(summary.console)
        self.printed += summary.printed
        self.done_count += summary.count
        self.progress.finished(batch.step, summary.count, 0)
        fan = batch.tasks.fan
        ready = self.scheduler.segment_done(fan.step, fan.stack, fan.num_splits, join_adder(
            batch, summary, (self.ds.url, self.flow.name)))
        self._enqueue(ready)

    def _own_locs(self, outcome: TaskOutcome, payload_ref) -> dict:
        own = {n: loc.at(payload_ref) for n, loc in outcome.new.items()}
        own.update(outcome.adopted)
        return own

    def _hand_on(self, task: ReadyTask, outcome: TaskOutcome, payload_ref) -> None:
        """Start the next steps of a task whose checkpoint is still being written."""
        show_console(outcome.console)  # before anything its next steps print
        own = self._own_locs(outcome, payload_ref)
        self.undurable[task.task_id] = (task.step, own)
        self.complete(task, outcome.next_steps, outcome.foreach, outcome.num_splits, own,
                      outcome.split_shapes, outcome.removed, counted=False)

    def _on_durable(self, task: ReadyTask, attempt: int, outcome: TaskOutcome | None,
                    error: TaskError | None, own: dict) -> None:
        """The checkpoint of a task already handed on was written, or could not be."""
        if outcome is not None and outcome.ok and error is None:
            for name, loc in outcome.new.items():
                held = own.get(name)
                if held is not None and held.pending:  # its hash, now that it is known
                    own[name] = dataclasses.replace(loc, ref=held.ref)
            self._attempted(outcome, shown=True)
            self.rows.final(task.step, outcome.attempt, True)
            self.done_count += 1
            self.progress.finished(task.step, 1, 0)
            return
        cause = error or (outcome.error if outcome is not None else None) or \
            TaskError.system(RuntimeError("the task's checkpoint was not written"))
        # Not retried: the next steps already read this attempt's values.
        err = dataclasses.replace(cause, retryable=False, message=(
            f"the step finished, but its checkpoint could not be written, so the task is not "
            f"done: {cause.message}"))
        if outcome is not None:
            self._attempted(outcome, shown=True)
        self.progress.finished(task.step, 0, 1)
        failed = outcome or TaskOutcome(task.step, task.task_id, attempt, ok=False)
        failed.ok, failed.error = False, err
        self.failures.append(failed)
        self.stopping = True
        # Tasks that wait for this checkpoint to write their own would wait in vain.
        tid = task.task_id
        self.executor.cancel_where(
            lambda b: any(spec.awaits and tid in spec.awaits for spec in b.specs))

    def _attempted(self, outcome: TaskOutcome, shown: bool = False) -> None:
        """An attempt that ran: the report's row, and its lines (shown now unless `shown`)."""
        show_console(None if shown else outcome.console)
        self.rows.attempt(outcome)
        self.printed += outcome.printed

    def _on_success(self, task: ReadyTask, outcome: TaskOutcome, payload_ref) -> None:
        self._attempted(outcome)
        self.rows.final(task.step, outcome.attempt, True)
        own = self._own_locs(outcome, payload_ref)
        self.complete(task, outcome.next_steps, outcome.foreach, outcome.num_splits, own,
                      outcome.split_shapes, outcome.removed)
        self.progress.finished(task.step, 1, 0)

    def complete(self, task: ReadyTask, next_steps, foreach, num_splits, own: dict,
                 split_shapes=None, removed: tuple[str, ...] = (), counted: bool = True) -> None:
        """Hand a finished (or cloned) task to the scheduler and queue what became ready.
        `counted=False`: its checkpoint is still being written; it counts as done later."""
        if foreach and self._too_many_splits(task, num_splits):
            return
        if foreach:
            self.progress.fanned_out(task.step, num_splits or 0)
        parent = None if task.is_join or not task.parents else task.parents[0].scope
        scope = Scope(own, parent, removed, task.step)
        if counted:
            self.done_count += 1
        done = TaskDone(task.step, task.stack, tuple(next_steps), foreach, num_splits, scope,
                        iteration=task.iteration, task_id=task.task_id)
        ready = list(self.scheduler.task_done(done))
        if split_shapes is not None:
            import array

            options, raw = split_shapes
            for item in ready:
                if isinstance(item, Fanout):
                    item.shapes = (options, array.array("I", raw))
        self._enqueue(ready)

    def _too_many_splits(self, task: ReadyTask, num_splits) -> bool:
        """--max-num-splits, as Metaflow's runtime enforces it: the foreach step fails (and the
        run stops) when it makes more splits than that. Without the option there is no cap."""
        cap = self.opts.max_num_splits
        if cap is None or num_splits is None or num_splits <= cap:
            return False
        failed = TaskOutcome(task.step, task.task_id, 0, ok=False)
        failed.error = TaskError(
            ErrorKind.USER, "rayflow.exceptions.RayflowException",
            f"Foreach in step {task.step!r} yielded {num_splits} child steps, which is more "
            f"than the maximum of {cap} given with --max-num-splits. Raise it with the "
            f"--max-num-splits option (or leave the option out: rayflow has no cap by default).",
            retryable=False)
        self.failures.append(failed)
        self.stopping = True
        return True

    def _on_failure(self, task: ReadyTask, attempt: int, error: TaskError,
                    outcome: TaskOutcome | None = None) -> None:
        decos = self.decos[task.step]
        if outcome is not None:
            self._attempted(outcome)
        if error.retryable and attempt < decos.retry_times and not self.stopping:
            self.retries.push(time.time() + decos.retry_delay, task, attempt + 1)
            self.progress.finished(task.step, 0, 0, retried=1)
            return
        died = error.kind is ErrorKind.SYSTEM or error.type.endswith(".StepCrashed")
        if died and outcome is None and decos.get("catch") is not None and not self.stopping:
            # Every attempt died before the step's code could raise (the worker was killed):
            # @catch still catches it, with one more attempt that runs no user code.
            self._submit([(task, attempt + 1)], {}, fallback=True)
            self.progress.finished(task.step, 0, 0, retried=1)
            return
        self.progress.finished(task.step, 0, 1)
        failed = outcome or TaskOutcome(task.step, task.task_id, attempt, ok=False)
        failed.error = error
        self.failures.append(failed)
        self.stopping = True
