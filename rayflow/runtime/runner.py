"""The runner: drives one run of a flow from start to end on an executor.

It owns the run's lifetime: the run record, the RunContext sent to workers, the loop that feeds
ready tasks to the executor in bounded windows and hands finished ones to the scheduler, retries
with their delays, and the final status. It holds artifact *locations* (refs and hashes), never
artifact bytes. Batching of foreach splits is decided here, from measured task durations.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import os
import time
from collections import deque
from dataclasses import dataclass, field

from ..decorators import StepDecorators, parse_with_spec
from ..exceptions import DataStoreUnreachable, RayflowException, SchedulingError, StepFailed
from .artifacts import ArtifactLoc, Scope
from .executor import Batch, BatchResult, InlineExecutor, RayExecutor
from .flowfile import LoadedFlow, display_path, flow_code_hash, step_code_hashes
from .progress import Progress
from .scheduler import Fanout, ReadyTask, Scheduler, TaskDone
from .spec import ItemLoc, JoinInput, RunContext, TaskOutcome, TaskSpec

MAX_CHUNKS = 4096          # most objects one foreach variable is cut into
TARGET_BATCH_SECONDS = 0.25
MAX_BATCH = 2000


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
    origin_run_id: str | None = None
    clone: object = None             # a resume.Cloner, set by resume
    run_id: str | None = None


@dataclass
class RunSummary:
    flow: str
    run_id: str
    status: str
    wall_seconds: float
    tasks_done: int
    tasks_failed: int
    tasks_cloned: int = 0
    failures: list = field(default_factory=list)
    datastore: str = ""
    flow_file: str = ""

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def successful(self) -> bool:
        return self.status == "success"


@dataclass
class _StepStats:
    tasks: int = 0
    seconds: float = 0.0


class Runner:
    def __init__(self, flow: LoadedFlow, params: dict, options: RunOptions):
        self.flow = flow
        self.graph = flow.graph
        self.params = params
        self.opts = options
        self.extra_decorators = [parse_with_spec(s) for s in options.with_decorators]
        self.decos = {s: StepDecorators.for_step(getattr(flow.cls, s), self.extra_decorators)
                      for s in self.graph.steps}
        self.scheduler = Scheduler(self.graph)
        self.queue: deque = deque()
        self.retries: list = []  # heap of (due_time, seq, ReadyTask, attempt)
        self._seq = 0
        self.stats: dict[str, _StepStats] = {}
        self.failures: list[TaskOutcome] = []
        self.done_count = 0
        self.cloned = 0
        self.stopping = False
        self.progress = Progress(enabled=options.progress)

    # ------------------------------------------------------------------------------ set-up
    def run(self) -> RunSummary:
        from ..datastore import FlowDataStore

        t0 = time.time()
        self.ds = FlowDataStore.from_url(self.opts.datastore_url, self.flow.name)
        self.run_id = self.opts.run_id or self.ds.new_run_id()
        self.user = self.opts.user or _username()
        # Connect (and let the cluster refuse this datastore) before the run record exists, so
        # a refused or unreachable cluster leaves no run that looks forever "running".
        self.executor = self._make_executor()
        record = self._write_run_record("running", t0)
        self.ctx = self._make_context()
        self.ctx_ref = self.executor.put(self.ctx)
        self.parallelism = max(1, self.executor.total_cpus())
        self.max_in_flight = self.opts.max_in_flight or max(8, 2 * self.parallelism)
        try:
            self._enqueue(self.scheduler.start())
            self._loop()
        except BaseException:
            self.executor.shutdown()
            self._flush_clones()
            self._finish_record(record, "failed")
            raise
        finally:
            self.progress.close()
        self._flush_clones()
        status = "success" if self.scheduler.finished and not self.failures else "failed"
        self._finish_record(record, status)
        return RunSummary(self.flow.name, self.run_id, status, time.time() - t0,
                          self.done_count, len(self.failures), self.cloned,
                          self.failures, self.ds.url, self.flow.file)

    def _write_run_record(self, status: str, started: float):
        from ..datastore import RunRecord

        rec = RunRecord(
            flow=self.flow.name, run_id=self.run_id, user=self.user,
            params={k: _json_safe(v) for k, v in self.params.items()},
            tags=list(self.opts.tags), sys_tags=[f"user:{self.user}", "runtime:rayflow"],
            code_hash=flow_code_hash(self.flow.file), status=status, started_at=started,
            finished_at=None, flow_file=self.flow.file, origin_run_id=self.opts.origin_run_id,
            datastore=self.ds.url, ray_address=self.opts.address)
        self.ds.write_run(rec)
        return rec

    def _flush_clones(self) -> None:
        if self.opts.clone is not None:
            self.opts.clone.flush()

    def _finish_record(self, rec, status: str) -> None:
        rec.status = status
        rec.finished_at = time.time()
        try:
            self.ds.write_run(rec)
        except Exception:  # noqa: BLE001 - never hide the run's own error behind this one
            pass

    def _make_executor(self):
        if self.opts.executor == "inline":
            return InlineExecutor()
        import ray

        from .cluster import check_datastore_fits_cluster

        connect_ray(self.opts.address, self.flow.file)
        check_datastore_fits_cluster(ray, self.ds.url)
        return RayExecutor()

    def _make_context(self) -> RunContext:
        infos = self.ds.save_artifacts(self.params) if self.params else {}
        param_locs = {n: ArtifactLoc.from_info(n, i) for n, i in infos.items()}
        flow_file = self.flow.file
        if self.opts.address and self.opts.executor == "ray":
            flow_file = os.path.basename(flow_file)  # shipped in runtime_env's working_dir
        return RunContext(
            flow_file=flow_file, module_name=self.flow.module_name,
            class_name=self.flow.cls.__name__, flow_name=self.flow.name, run_id=self.run_id,
            datastore_url=self.ds.url, params=dict(self.params), param_locs=param_locs,
            code_hashes=step_code_hashes(self.flow.cls, self.graph), user=self.user,
            tags=list(self.opts.tags), origin_run_id=self.opts.origin_run_id,
            namespace=self.opts.namespace, source_dir=os.path.dirname(self.flow.file),
            datastore_env=datastore_env(self.ds.url))

    # -------------------------------------------------------------------------------- loop
    def _loop(self) -> None:
        while True:
            self._release_due_retries()
            if not self.stopping:
                self._submit_ready()
            if self.executor.in_flight == 0 and not self._has_pending_work():
                break
            for result in self.executor.wait(timeout=0.2):
                self._on_result(result)
            self.progress.tick()
        if not self.stopping and not self.scheduler.finished:
            raise RuntimeError("rayflow bug: the run stalled with no task ready or running")

    def _has_pending_work(self) -> bool:
        if self.stopping:
            return False
        return bool(self.queue) or bool(self.retries)

    def _enqueue(self, items) -> None:
        for item in items:
            if isinstance(item, Fanout):
                self._prepare_fanout(item)
                self.progress.add_total(item.step, item.num_splits)
            else:
                self.progress.add_total(item.step, 1)
            if self.opts.clone is not None and not isinstance(item, Fanout):
                if self.opts.clone.try_clone(self, item):
                    continue
            self.queue.append(item)

    def _prepare_fanout(self, fan: Fanout) -> None:
        """Cut the foreach variable into chunks in the object store, one slicer task."""
        n = fan.num_splits
        check_width_fits_memory(fan.step, n)
        chunk = max(1, math.ceil(n / MAX_CHUNKS))
        num_chunks = math.ceil(n / chunk)
        loc = fan.parent.scope.get(fan.foreach_var)
        fan.chunk = chunk
        fan.chunk_refs = self.executor.slice(self.ctx_ref, loc, chunk, num_chunks)

    def _submit_ready(self) -> None:
        flat_cache: dict[int, dict] = {}
        while self.queue and self.executor.in_flight < self.max_in_flight:
            item = self.queue.popleft()
            if isinstance(item, Fanout):
                tasks = item.take(self._batch_size(item))
                if item.remaining:
                    self.queue.append(item)  # round-robin with other ready steps
                tasks = [t for t in tasks if not self._cloned(t)]
                if not tasks:
                    continue
                self._submit([(t, 0) for t in tasks], flat_cache)
            else:
                self._submit([(item, 0)], flat_cache)

    def _cloned(self, task: ReadyTask) -> bool:
        clone = self.opts.clone
        return clone is not None and clone.try_clone(self, task)

    def _batch_size(self, fan: Fanout) -> int:
        decos = self.decos[fan.step]
        if decos.timeout_seconds or fan.shapes is not None:
            return 1
        st = self.stats.get(fan.step)
        if st is None or st.tasks < self.parallelism:
            return 1
        per_task = max(st.seconds / st.tasks, 1e-5)
        size = int(TARGET_BATCH_SECONDS / per_task)
        fair = math.ceil(fan.remaining / (2 * self.parallelism))
        return max(1, min(size, fair, MAX_BATCH))

    def _submit(self, tasks_attempts: list, flat_cache: dict) -> None:
        step = tasks_attempts[0][0].step
        decos = self.decos[step]
        specs = [self._spec_for(t, a, flat_cache) for t, a in tasks_attempts]
        options = self._options_for(tasks_attempts[0][0], decos)
        batch = Batch(step, [t for t, _ in tasks_attempts], specs, options,
                      timeout=decos.timeout_seconds)
        batch.attempts = [a for _, a in tasks_attempts]
        self.executor.submit(self.ctx_ref, batch, self.extra_decorators)
        self.progress.submitted(step, len(specs))

    def _options_for(self, task: ReadyTask, decos: StepDecorators) -> dict:
        fan = task.fanout
        if fan is not None and fan.shapes is not None:
            options, index = fan.shapes
            return dict(options[index[task.split_index]])
        res = decos.resources
        return res.ray_options(None) if not res.is_dynamic else {"num_cpus": 1.0}

    def _spec_for(self, task: ReadyTask, attempt: int, flat_cache: dict) -> TaskSpec:
        parents = tuple(f"{self.flow.name}/{self.run_id}/{p.key.step}/{p.key.task_id}"
                        for p in task.parents)
        spec = TaskSpec(task.step, task.task_id, attempt, task.stack, parents=parents)
        if task.is_join:
            spec.join_inputs, spec.join_bases = self._join_inputs(task)
            return spec
        if task.parents:
            scope = task.parents[0].scope
            flat = flat_cache.get(id(scope))
            if flat is None:
                flat = flat_cache[id(scope)] = scope.flatten()
            spec.view = flat
        if task.split_parent is not None:
            fan = task.fanout
            i = task.split_index
            spec.item = ItemLoc(fan.chunk_refs[i // fan.chunk], i % fan.chunk)
        return spec

    def _join_inputs(self, task: ReadyTask):
        bases, base_index, inputs = [], {}, []
        for link in task.parents:
            scope = link.scope
            parent = scope.parent
            key = id(parent)
            if key not in base_index:
                base_index[key] = len(bases)
                bases.append(parent.flatten() if parent is not None else {})
            inputs.append(JoinInput(link.key.step, link.key.task_id, scope.own, base_index[key]))
        return inputs, bases

    # --------------------------------------------------------------------------- results
    def _on_result(self, result: BatchResult) -> None:
        batch = result.batch
        if result.outcomes is None:
            for task, attempt in zip(batch.tasks, batch.attempts):
                self._on_failure(task, attempt, dict(result.error))
            return
        self._record_stats(batch.step, result.outcomes)
        for task, outcome in zip(batch.tasks, result.outcomes):
            if outcome.ok:
                self._on_success(task, outcome, result.payload_ref)
            else:
                self._on_failure(task, outcome.attempt, outcome.error, outcome)

    def _record_stats(self, step: str, outcomes: list[TaskOutcome]) -> None:
        st = self.stats.setdefault(step, _StepStats())
        st.tasks += len(outcomes)
        st.seconds += max(o.finished_at for o in outcomes) - min(o.started_at for o in outcomes)

    def _on_success(self, task: ReadyTask, outcome: TaskOutcome, payload_ref) -> None:
        own = {n: dataclasses.replace(loc, ref=payload_ref) for n, loc in outcome.new.items()}
        own.update(outcome.adopted)
        self.complete(task, outcome.next_steps, outcome.foreach, outcome.num_splits, own,
                      outcome.split_shapes)
        self.progress.finished(task.step, 1, 0)

    def complete(self, task: ReadyTask, next_steps, foreach, num_splits, own: dict,
                 split_shapes=None) -> None:
        """Hand a finished (or cloned) task to the scheduler and queue what became ready."""
        parent = None if task.is_join or not task.parents else task.parents[0].scope
        scope = Scope(own, parent)
        self.done_count += 1
        done = TaskDone(task.step, task.stack, tuple(next_steps), foreach, num_splits, scope)
        ready = list(self.scheduler.task_done(done))
        if split_shapes is not None:
            import array

            options, raw = split_shapes
            for item in ready:
                if isinstance(item, Fanout):
                    item.shapes = (options, array.array("I", raw))
        self._enqueue(ready)

    def _on_failure(self, task: ReadyTask, attempt: int, error: dict,
                    outcome: TaskOutcome | None = None) -> None:
        decos = self.decos[task.step]
        if error.get("retryable") and attempt < decos.retry_times and not self.stopping:
            self._seq += 1
            due = time.time() + decos.retry_delay
            heapq.heappush(self.retries, (due, self._seq, task, attempt + 1))
            self.progress.finished(task.step, 0, 0, retried=1)
            return
        self.progress.finished(task.step, 0, 1)
        failed = outcome or TaskOutcome(task.step, task.task_id, attempt, ok=False, error=error)
        failed.error = error
        self.failures.append(failed)
        self.stopping = True

    def _release_due_retries(self) -> None:
        now = time.time()
        while self.retries and self.retries[0][0] <= now and not self.stopping:
            _, _, task, attempt = heapq.heappop(self.retries)
            self._submit([(task, attempt)], {})


DRIVER_BYTES_PER_SPLIT = 2048  # measured: ~1.8 KB of driver memory per finished split


def check_width_fits_memory(step: str, num_splits: int) -> None:
    """No fixed cap on a foreach: only the driver's memory bounds it, and this says so."""
    import psutil

    need = num_splits * DRIVER_BYTES_PER_SPLIT
    have = psutil.virtual_memory().available
    if need > 0.8 * have:
        raise RayflowException(
            f"Step {step!r} fans out into {num_splits:,} splits. rayflow has no cap on a "
            f"foreach, but the driver keeps about {DRIVER_BYTES_PER_SPLIT:,} bytes per split, "
            f"{need / 2**30:.1f} GiB here, and this machine has {have / 2**30:.1f} GiB "
            f"available. Fan out over fewer, larger items (e.g. chunks of rows), or run the "
            f"driver on a machine with more memory.", step=step)


DATASTORE_ENV_PREFIXES = ("AWS_",)


def datastore_env(url: str) -> dict[str, str]:
    """The environment that decides how an s3:// datastore is reached."""
    if not url.startswith("s3://"):
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith(DATASTORE_ENV_PREFIXES)}


def connect_ray(address: str | None, flow_file: str) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), or start an embedded Ray."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        folder = os.path.dirname(os.path.abspath(flow_file))
        runtime_env = {"working_dir": folder,
                       "excludes": [".rayflow/", ".venv/", ".git/", "__pycache__/"]}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        import logging

        # An embedded Ray serves this process alone: its servers listen on 127.0.0.1 only
        # (Ray's single-machine mode), and its start-up chatter stays off the console.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # address="local": always a fresh Ray of our own, never a cluster that happens to be
        # running on this machine (plain ray.init() would join one).
        ray.init(address="local", include_dashboard=False, log_to_driver=True,
                 logging_level=logging.ERROR)


def raise_for_failures(summary: RunSummary) -> None:
    """Turn a failed run into the user-facing StepFailed error, with the user's traceback."""
    if summary.successful:
        return
    if not summary.failures:
        raise RayflowException(f"Run {summary.pathspec} did not finish.")
    first = summary.failures[0]
    err = first.error or {}
    pathspec = f"{summary.pathspec}/{first.step}/{first.task_id}"
    if err.get("type") == "SchedulingError":
        raise SchedulingError(
            f"{err.get('message')}\nThe run stopped at task {pathspec}. Once the cluster can "
            f"run it, continue with: rayflow resume {display_path(summary.flow_file)} "
            f"--origin-run-id {summary.run_id}", step=first.step)
    if err.get("type", "").startswith("DataStore"):
        raise DataStoreUnreachable(
            f"{err.get('message')}\nThe run stopped at task {pathspec}. Once the datastore is "
            f"reachable again, continue with: rayflow resume {display_path(summary.flow_file)} "
            f"--origin-run-id {summary.run_id}", step=first.step)
    body = err.get("traceback") or f"{err.get('type')}: {err.get('message')}"
    more = f" ({len(summary.failures) - 1} more failed tasks)" if len(summary.failures) > 1 else ""
    raise StepFailed(
        f"Step {first.step!r} failed in task {pathspec} (attempt {first.attempt}){more}:\n\n"
        f"{body.rstrip()}\n\nFix the step, then continue the run with: "
        f"rayflow resume {display_path(summary.flow_file)} --origin-run-id {summary.run_id}",
        step=first.step)


def _username() -> str:
    from ..client import get_username

    return get_username()


def _json_safe(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        return value if not (isinstance(value, str) and len(value) > 1000) else value[:1000]
    if isinstance(value, (list, dict)):
        return value
    return repr(value)
