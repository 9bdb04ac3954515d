"""What runs inside a Ray worker (a Ray task or a pool actor) for a batch of tasks.

The entry points the executors call there: `stream_batch` (a Ray task's generator),
`execute_batch` (the same, run to its end: the inline and actor executors), `warm_worker`
(run as a run starts, so a worker's first task does not pay for imports) and `slice_items`
(cutting a foreach variable into chunks). Around each batch: the per-process caches (the
flow's class, graph and decorators, `worker_flow`; one datastore per URL, `datastore_for`),
the run's datastore environment (`scoped_environ`), waiting for the records of tasks handed on
early (`AwaitedRecords`) and persisting the batch (`persist`): blobs of every task in one
call, then the records (one bundle file for the whole batch: its atomic write is the DONE of
each task in it, see `rayflow/datastore/bundles.py`), then logs; then the cards.

One task's own body is `worker_task.py`; the driver's side of a batch (what goes into it,
its result) is `batching.py`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import platform
import socket
import sys
from contextlib import contextmanager
from typing import Any

from ..config import apply_configs, config_values_of
from ..decorators import StepDecorators, parse_with_spec
from ..user_decorators.process import mutated_class
from .artifacts import ArtifactLoader
from .batching import SplitSpecs, starts_early
from .capture import FdCapture, captured_output
from .crash import BatchSpool, StepCrashed
from .errors import TaskError
from .fanout import summarize
from .flowfile import file_version, find_flow_class, graph_of, import_flow_file
from .isolation import TaskIsolation, module_baseline
from .spec import RunContext, TaskSpec
from .worker_task import (
    CapturedTask,
    WorkerFlow,
    finish_encoding,
    is_ndarray,
    run_task,
    set_source_dir,
    task_prefix,
)

_DATASTORES: dict[tuple[str, str], Any] = {}


def datastore_for(url: str, flow_name: str):
    """One FlowDataStore per worker process and datastore (opening S3 is slow)."""
    from ..datastore import FlowDataStore

    key = (url, flow_name)
    ds = _DATASTORES.get(key)
    if ds is None:
        ds = _DATASTORES[key] = FlowDataStore.from_url(url, flow_name)
        # The driver reached this datastore before it sent any task: an outage now is waited
        # out for a while (see rayflow/datastore/s3.py), not failed at once.
        ds.storage.expect_reachable()
    return ds


_WORKER_FLOWS: dict[tuple, WorkerFlow] = {}


def worker_flow(ctx: RunContext) -> WorkerFlow:
    # Decorators may read the run's configs: runs with other configs build their own.
    # A worker of a warm Ray (`rayflow up`) serves many runs: a flow file edited since it was
    # imported is imported again, and the module name two flows share ("flow") points at this
    # run's module while its tasks run, so what they pickle and unpickle is this flow's.
    key = (ctx.flow_file, ctx.module_name, ctx.class_name, tuple(ctx.with_decorators),
           ctx.configs_key, file_version(ctx.flow_file))
    wf = _WORKER_FLOWS.get(key)
    if wf is not None:
        if wf.module is not None and sys.modules.get(ctx.module_name) is not wf.module:
            sys.modules[ctx.module_name] = wf.module
        return wf
    if wf is None:
        module = import_flow_file(ctx.flow_file, ctx.module_name)
        cls = find_flow_class(module, ctx.class_name)
        apply_configs(cls, ctx.params)
        configs = config_values_of(cls)
        cls = mutated_class(cls, configs, ctx.with_decorators)
        graph = graph_of(cls)
        extra = [parse_with_spec(s) for s in ctx.with_decorators]
        decos = {name: StepDecorators.for_step(getattr(cls, name), extra, configs)
                 for name in graph.steps}
        wf = _WORKER_FLOWS[key] = WorkerFlow(cls, graph, decos, module,
                                             module_baseline(module))
        # What the process imported lives as long as it does: the collector's full passes
        # during the tasks need not walk it again (reference counting still frees it).
        gc.freeze()
    return wf


@contextmanager
def collector_paused():
    """rayflow's own bookkeeping of a batch (records, summaries: many small objects, no
    garbage cycles) without the cyclic collector's passes, which cost more than building
    them. Never around a user's step."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def enter_run_folder(ctx: RunContext) -> None:
    """Work in the run's folder, as the driver does, before the flow file is imported here: a
    warm Ray's workers were started elsewhere (a flow's top-level code may write or read
    files relative to it). A warm Ray's worker serves only this run (Ray's job)."""
    if ctx.driver_cwd and os.getcwd() != ctx.driver_cwd and os.path.isdir(ctx.driver_cwd):
        os.chdir(ctx.driver_cwd)


@contextmanager
def scoped_environ(env: dict[str, str], unset=()):
    """Set `env` in os.environ, and remove the names in `unset`, for the duration of the
    block, then put back what was there: a worker process serves many runs, and must not
    keep one run's settings for the next (nor show a run what the warm Ray's first run had
    set and this one has not)."""
    saved = {k: os.environ.get(k) for k in (*env, *unset)}
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def stream_batch(ctx: RunContext, specs: list[TaskSpec], capture_fds: bool = True,
                 summarize_splits: bool = False):
    """Run `specs` (all of one step) and persist them, as a generator of four items:

    1. the payload (task id -> new artifact values), for the object store;
    2. the outcomes, as soon as the steps have run: the run loop may start the next steps on
       the payload now, while this worker writes the checkpoint (None for a task whose next
       steps may not start early, see `starts_early`);
    3. the batch's join segment (`fanout.summarize`), or None;
    4. the outcomes again once blobs, records and logs are durable, with the hashes of the
       values whose encoding waited (`task.finish_encoding`); a `BatchSummary` instead when
       `summarize_splits` and the batch is a range of splits that all went into their join.

    The worker holds a batch's values until its checkpoint is written and takes no other
    task meanwhile: that bounds the checkpoints in progress by the workers running.
    `capture_fds`: catch what the tasks write to fds 1 and 2 too (a worker's process; not the
    driver's, whose other threads print progress meanwhile)."""
    split_range = isinstance(specs, SplitSpecs)
    chunk_refs = specs.chunk_refs if split_range else ()
    if split_range:
        specs = specs.specs()
    set_source_dir(ctx.source_dir)
    enter_run_folder(ctx)
    with scoped_environ(ctx.datastore_env, ctx.env_unset):
        wf = worker_flow(ctx)
        ds = datastore_for(ctx.datastore_url, ctx.flow_name)
        spool = BatchSpool(ctx.flow_name, ctx.run_id, specs[0].step, specs[0].task_id,
                           specs[0].attempt)
        _check_earlier_attempt(ds, ctx, specs, spool)
        awaited = AwaitedRecords(ds, ctx.run_id)
        for spec in specs:
            if spec.is_join and spec.awaits:  # merge_artifacts compares hashes
                awaited.resolve_join(spec)
        # A join reads many inputs that share what they inherited: count it as several.
        consumers = len(specs) + sum(1 for spec in specs if spec.is_join)
        loader = ArtifactLoader(lambda: ds, consumers=consumers)
        loader.prefetch(chunk_refs)
        node = node_name()
        spool.open()
        try:
            with FdCapture() if capture_fds else contextlib.nullcontext() as fdcap:
                captured = _run_tasks(ctx, wf, specs, loader, ds, node, spool, fdcap)
            yield {c.outcome.task_id: c.values for c in captured if c.values}
            # Only the tasks whose next steps may start before the checkpoint is written: the
            # others (into a join, or failed) wait for the durable outcomes.
            yield [c.outcome if starts_early(wf.graph, c.outcome) else None for c in captured]
            for spec, cap in zip(specs, captured):
                finish_encoding(cap, spec, ds.artifacts)
                if spec.awaits:
                    awaited.resolve(spec, cap)
            with collector_paused():
                persist(ds, ctx, specs, captured)
        finally:
            spool.close(remove=True)
        render_cards(ds, ctx, wf, specs, captured)
    with collector_paused():
        summary, segment = summarize(wf.graph, specs, captured, ds, ctx.run_id) \
            if summarize_splits and split_range else (None, None)
    yield segment
    yield summary if summary is not None else [c.outcome for c in captured]


def _check_earlier_attempt(ds, ctx: RunContext, specs: list[TaskSpec], spool) -> None:
    """What an earlier run of this batch left in its spool: a task that timed out is marked;
    a crash of the step's own (a signal) is recorded and raised as the step's failure."""
    crash = spool.previous_crash()
    timed_out = spool.previous_timeout() if crash is None else None
    for spec in specs:
        spec.timed_out = spec.task_id == timed_out
    if crash is not None:
        _record_crash(ds, ctx, specs, crash)
        spool.close(remove=True)
        raise StepCrashed(crash.describe(specs[0].step), crash.task_id, crash.signal_name)


def _run_tasks(ctx: RunContext, wf, specs: list[TaskSpec], loader, ds, node: str,
               spool, fdcap) -> list[CapturedTask]:
    """Run the batch's tasks one after the other, each from the process state a fresh process
    would give it (Metaflow runs each task in its own process)."""
    iso = TaskIsolation(wf.module, wf.baseline)
    # One stdout/stderr capture for the batch, re-armed per task (each keeps its own log).
    output = captured_output("", None, fdcap, ctx.max_log_bytes)
    captured = []
    for spec in specs:
        iso.before_task()
        try:
            captured.append(run_task(ctx, wf, spec, loader, ds, node, spool, fdcap, output))
        finally:
            iso.after_task()
    return captured


def warm_worker(ctx: RunContext) -> int:
    """Run in a worker as the run starts: import rayflow's task code, the datastore and the
    flow module, and build the flow's graph and decorators, so the first task of each worker
    does not pay for them. Never fails: a flow that does not import fails its first task,
    with the user's traceback."""
    try:
        enter_run_folder(ctx)
        with scoped_environ(ctx.datastore_env, ctx.env_unset):
            worker_flow(ctx)
            datastore_for(ctx.datastore_url, ctx.flow_name)
    except BaseException:  # noqa: BLE001 - the first task reports it
        pass
    return os.getpid()


def execute_batch(ctx: RunContext, specs: list[TaskSpec], capture_fds: bool = True,
                  summarize_splits: bool = False) -> tuple:
    """Run `specs` and persist them, all at once. Returns (outcomes, payload), and the
    segment as a third item with `summarize_splits` (see `stream_batch`)."""
    payload, _, segment, outcomes = stream_batch(ctx, specs, capture_fds, summarize_splits)
    return (outcomes, payload, segment) if summarize_splits else (outcomes, payload)


class AwaitedRecords:
    """The records of the tasks a batch was started before they were durable: waited for
    (they are being written as the batch runs), read once per batch."""

    POLL_LIMIT_S = 600.0

    def __init__(self, ds, run_id: str):
        self.ds, self.run_id = ds, run_id
        self._recs: dict[str, Any] = {}

    def record(self, task_id: str, step: str):
        rec = self._recs.get(task_id)
        if rec is None:
            rec = self._recs[task_id] = self._wait(task_id, step)
        return rec

    def _wait(self, task_id: str, step: str):
        import time

        from ..exceptions import DataStoreError

        deadline, pause = time.time() + self.POLL_LIMIT_S, 0.002
        while True:
            if self.ds.is_done(self.run_id, step, task_id):
                rec = self.ds.read_task(self.run_id, step, task_id)
                if rec is not None and rec.status == "success":
                    return rec
            if time.time() > deadline:
                raise DataStoreError(
                    f"Task {self.ds.flow_name}/{self.run_id}/{step}/{task_id} handed its "
                    f"artifacts on, but its checkpoint was not written within "
                    f"{self.POLL_LIMIT_S:.0f} s. Resume the run to run it again.")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _final(self, loc, awaits: dict[str, str]):
        if not loc.pending:
            return loc
        info = self.record(loc.key, awaits[loc.key]).artifacts[loc.name]
        return type(loc).from_info(loc.name, info, ref=loc.ref, key=loc.key)

    def resolve(self, spec: TaskSpec, cap: CapturedTask) -> None:
        """Wait for every awaited task, and give the record of `cap` their hashes."""
        for task_id, step in spec.awaits.items():
            self.record(task_id, step)
        arts = cap.record_artifacts
        for name, loc in list(arts.items()):
            if loc.pending and loc.key != spec.task_id:
                arts[name] = self._final(loc, spec.awaits)
                if name in cap.inputs_read:
                    cap.inputs_read[name] = arts[name].sha
        item = spec.item
        if item is not None and item.var and not item.sha and item.var in spec.view:
            sha = self._final(spec.view[item.var], spec.awaits).sha
            cap.inputs_read[f"{item.var}[{item.index}]"] = sha

    def resolve_join(self, spec: TaskSpec) -> None:
        """The hashes a join compares (merge_artifacts), before it runs."""
        spec.join.resolve_pending(lambda loc: self._final(loc, spec.awaits))


def persist(ds, ctx: RunContext, specs: list[TaskSpec], captured: list[CapturedTask]) -> None:
    """Blobs first (one batch), then every record, then every DONE, then logs."""
    ds.artifacts.save([enc for cap in captured for enc in cap.encoded])
    records = _BatchRecords(ctx).records(specs, captured)
    ds.write_tasks(records, bundle=len(records) > 1)
    for spec, cap in zip(specs, captured):
        for stream in ("stdout", "stderr"):
            text = getattr(cap, stream)
            if text:
                ds.save_log(ctx.run_id, spec.step, spec.task_id, spec.attempt, stream, text)


class _BatchRecords:
    """The TaskRecords of a batch. What its tasks share (inherited locations, parents,
    transition, environment) is made once and the same object in each record: a batch may
    be 2,000 splits, and the bundle writes a value every record has once, comparing by
    identity first (bundles.to_columns)."""

    def __init__(self, ctx: RunContext):
        from ..parameters import params_as_json

        self.ctx, self.params = ctx, params_as_json(ctx.params)
        self.python_version = platform.python_version()
        self._shared: dict = {}

    def _once(self, key, make, *args):
        got = self._shared.get(key)
        if got is None:
            got = self._shared[key] = make(*args)
        return got

    def _info(self, loc):
        return self._once(id(loc), loc.info)

    def _transition(self, next_steps, foreach) -> dict:
        return {"steps": list(next_steps), "foreach": foreach}

    def records(self, specs: list[TaskSpec], captured: list[CapturedTask]) -> list:
        from ..datastore import TaskRecord
        from .gang import gang_metadata

        ctx, once, info = self.ctx, self._once, self._info
        out = []
        for spec, cap in zip(specs, captured):
            o, step = cap.outcome, spec.step
            parents = once(("p", id(spec.parents)), spec.parent_pathspecs, ctx.flow_name,
                           ctx.run_id) if spec.parents else \
                spec.parent_pathspecs(ctx.flow_name, ctx.run_id)
            out.append(TaskRecord(
                flow=ctx.flow_name, run_id=ctx.run_id, step=step, task_id=spec.task_id,
                attempt=spec.attempt, status="success" if o.ok else "failed",
                artifacts={n: info(loc) for n, loc in cap.record_artifacts.items()},
                foreach_stack=[list(f) for f in spec.foreach_stack],
                iteration=spec.iteration, foreach_num_splits=o.num_splits,
                transition=once(("t", tuple(o.next_steps), o.foreach), self._transition,
                                o.next_steps, o.foreach),
                parents=parents, inputs=cap.inputs_read,
                code_hash=ctx.code_hashes.get(step, ""), params=self.params,
                user=ctx.user, node=o.node, started_at=o.started_at,
                finished_at=o.finished_at,
                exception=o.error.to_json() if o.error else None, origin_pathspec=None,
                python_version=self.python_version, worker=o.worker, peak_rss=o.peak_rss,
                caught=o.caught,
                environment=once(("e", step), _environment_or_false, ctx, step) or None,
                metadata=gang_metadata(spec.gang) if spec.gang is not None else None))
        return out


def _environment_or_false(ctx: RunContext, step: str):
    return _environment(ctx, step) or False


def render_cards(ds, ctx: RunContext, wf, specs: list[TaskSpec],
                 captured: list[CapturedTask]) -> None:
    """The @card pages of the tasks that have them, now that their records are durable: for
    a task that succeeded, or failed its last attempt."""
    todo = [(spec, cap) for spec, cap in zip(specs, captured) if cap.cards is not None and
            (cap.outcome.ok or spec.attempt >= wf.decorators[spec.step].retry_times)]
    if not todo:
        return
    from ..cards.render import render_final

    for spec, cap in todo:
        pathspec = f"{ctx.flow_name}/{ctx.run_id}/{spec.step}/{spec.task_id}"
        with _prefixed_stderr(task_prefix(ctx, spec)):
            render_final(ds, pathspec, ctx.datastore_url, spec.attempt, cap.cards,
                         graph=_graph_info(wf.graph))


@contextlib.contextmanager
def _prefixed_stderr(prefix: str):
    """Card warnings printed after the task's own output was saved: shown with its prefix."""
    real = sys.stderr

    class _Prefixed:
        def write(self, text):
            for line in text.splitlines(keepends=True):
                real.write(prefix + line if line.strip() else line)
            return len(text)

        def flush(self):
            real.flush()

    sys.stderr = _Prefixed()
    try:
        yield
    finally:
        sys.stderr = real


def _graph_info(graph) -> dict:
    """The flow's graph as a card type receives it: Metaflow's `_graph_info` (steps, start
    and end step)."""
    from ..graph.info import graph_info

    try:
        return graph_info(graph)
    except Exception:  # noqa: BLE001 - informative only
        return {}


def _environment(ctx: RunContext, step: str) -> dict | None:
    """A @pypi/@conda step's environment for its task records: what the driver asked for,
    and the versions this process finds installed."""
    env = ctx.environments.get(step)
    if not env:
        return None
    return {**env, "installed": _installed(tuple(env.get("requirements", ())))}


@functools.lru_cache(maxsize=64)
def _installed(requirements: tuple[str, ...]) -> dict:
    from .environments import installed_versions

    return installed_versions(list(requirements))


def _record_crash(ds, ctx: RunContext, specs: list[TaskSpec], crash) -> None:
    """The crashed task as a failed attempt, with the output it wrote before it died."""
    import time

    from ..datastore import TaskRecord
    from ..datastore.logs import encode_timed_log
    from ..parameters import params_as_json

    spec = next((s for s in specs if s.task_id == crash.task_id), specs[0])
    error = TaskError.from_exception(StepCrashed(crash.describe(spec.step), crash.task_id,
                                                 crash.signal_name))
    now = time.time()
    ds.write_tasks([TaskRecord(
        flow=ctx.flow_name, run_id=ctx.run_id, step=spec.step, task_id=spec.task_id,
        attempt=spec.attempt, status="failed", foreach_stack=[list(f) for f in spec.foreach_stack],
        iteration=spec.iteration,
        parents=spec.parent_pathspecs(ctx.flow_name, ctx.run_id),
        code_hash=ctx.code_hashes.get(spec.step, ""),
        params=params_as_json(ctx.params), user=ctx.user, node=node_name(),
        started_at=now, finished_at=now, exception=error.to_json(),
        python_version=platform.python_version())])
    stderr = crash.stderr + [f"rayflow: the step's process died with {crash.signal_name} "
                             f"({crash.fatal.lower()})."]
    for stream, lines in (("stdout", crash.stdout), ("stderr", stderr)):
        if lines:
            ds.save_log(ctx.run_id, spec.step, spec.task_id, spec.attempt, stream,
                        encode_timed_log((now, line) for line in lines))


def slice_items(ctx: RunContext, loc, chunk: int, num_chunks: int):
    """Cut a foreach variable into `num_chunks` lists of `chunk` items (the last may be
    shorter), so each split batch receives only its own items.

    The parent's payload may hold instances of classes defined in the flow file, so the flow
    module is imported first: this worker may not have run any task of the flow yet."""
    enter_run_folder(ctx)
    with scoped_environ(ctx.datastore_env, ctx.env_unset):
        worker_flow(ctx)
        value = ArtifactLoader(lambda: datastore_for(ctx.datastore_url, ctx.flow_name))(loc)
    if not isinstance(value, (list, tuple, range)) and not is_ndarray(value):
        value = list(value)
    chunks = [list(value[i * chunk:(i + 1) * chunk]) for i in range(num_chunks)]
    return chunks[0] if num_chunks == 1 else tuple(chunks)


def node_name() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()[:12] + "@" + socket.gethostname()
    except Exception:  # noqa: BLE001 - the node name is informative only
        pass
    return socket.gethostname()
