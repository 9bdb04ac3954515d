"""RayExecutor: each batch is one Ray task, a streaming generator, collected with ray.wait.

A batch's Ray task yields four objects (`worker.stream_batch`): the payload of artifact
values, the outcomes as soon as the steps have run, a batch of splits' join segment (kept in
the object store for the join, see runtime/fanout.py), and the outcomes again (or their
summary) once the checkpoint is durable. The payload stays in the object store, owned by the
driver because it is a task return, so it outlives the worker that made it. So each batch
comes back twice: a "delivered" result (the run loop may start the next steps on the payload;
not sent when no task of the batch may start early) and a "durable" one.
The run context is put in the object store once and every batch reads it by reference.

A worker that dies before its batch delivered is replaced: the batch runs again, up to
`system_retries` times (as Ray's own `max_retries` would). Once it has delivered, other tasks
may already read its values, so it never runs again in this run: a death then fails its tasks,
and resume runs them. User exceptions are never retried here: the run loop retries them as
@retry says.
"""

from __future__ import annotations

import time
from typing import Any

from ..exceptions import SchedulingError
from .batching import Batch, BatchResult
from .errors import ErrorKind, TaskError
from .executor import Executor
from .spec import RunContext

SYSTEM_RETRIES = 3
PRESTART_MAX = 8   # workers a run starts (and warms) before its first task


def _entry(ctx, specs):
    # Imported inside the worker; kept tiny so the pickled function is a reference.
    from .worker import stream_batch

    yield from stream_batch(ctx, specs, summarize_splits=True)


def _warm(ctx):
    from .worker import warm_worker

    return warm_worker(ctx)


def _slice(ctx, loc, chunk, num_chunks):
    from .worker import slice_items

    return slice_items(ctx, loc, chunk, num_chunks)


def _env_key(env: dict) -> str:
    import json

    return json.dumps(env, sort_keys=True, default=str)


def _environment_failed(step: str, exc: BaseException):
    """Ray could not build a @pypi/@conda step's environment on a node: the user's error
    (running it again builds it again, and fails again), with the installer's last words."""
    from ..exceptions import StepEnvironmentError

    lines = [line for line in str(exc).splitlines() if line.strip()]
    tail = "\n".join(lines[-12:])
    return StepEnvironmentError(
        f"Ray could not build the environment of step {step!r} (@pypi/@conda) on a node:\n"
        f"{tail}", step=step)


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, system_retries: int = SYSTEM_RETRIES):
        import ray

        from .cluster import FeasibilityWatch

        self._ray = ray
        self._remote = ray.remote(_entry)
        self._slicer = ray.remote(_slice)
        self._pending: dict[Any, Batch] = {}
        self.system_retries = system_retries
        self._watch = FeasibilityWatch(ray)
        self._unschedulable: dict[Any, str] = {}
        self._ctx_ref = None
        self._warmups: list = []
        self._stage: dict[Any, int] = {}  # a streaming batch: how many items it has yielded
        # @pypi/@conda steps' runtime_envs: each gets a worker started (and its environment
        # built, the first time on a node) as the run starts, not when its step comes. A
        # batch of such a step waits ("parked") until that worker is ready, and then takes
        # it, instead of making Ray start a second one beside it.
        self.environments: list[dict] = []
        self._env_warm: dict[str, Any] = {}
        self._parked: list[Batch] = []

    def start(self, ctx: RunContext) -> None:
        self._ctx_ref = self._ray.put(ctx)
        self._prestart()

    def _prestart(self) -> None:
        """Start this run's workers now, one per free CPU (at most PRESTART_MAX),
        each importing rayflow and the flow, while the driver goes on with its own set-up:
        the first tasks find them ready. Their results are not waited for."""
        try:
            node_cpus = int(self._ray.available_resources().get("CPU", 0))
        except Exception:  # noqa: BLE001 - only an optimisation
            return
        warm = self._ray.remote(_warm)
        opts = {"max_retries": 0, "name": "rayflow-warm"}
        self._warmups = [warm.options(num_cpus=1, **opts).remote(self._ctx_ref)
                         for _ in range(max(0, min(node_cpus, PRESTART_MAX)))]
        for env in self.environments:
            ref = warm.options(num_cpus=0, runtime_env=env, **opts).remote(self._ctx_ref)
            self._env_warm[_env_key(env)] = ref

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._parked)

    def put(self, value):
        return self._ray.put(value)

    def total_cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def submit(self, batch: Batch) -> None:
        env = batch.options.get("runtime_env")
        if env is not None and _env_key(env) in self._env_warm:
            self._parked.append(batch)
            self._unpark(0)
            return
        opts = dict(batch.options)
        opts.update(num_returns="streaming", retry_exceptions=False, name=batch.step,
                    max_retries=0)
        gen = self._remote.options(**opts).remote(self._ctx_ref, batch.specs)
        batch.handle, batch.payload_ref = gen, None
        batch.submitted_at = time.time()
        self._pending[gen] = batch
        self._stage[gen] = 0

    def _unpark(self, timeout: float) -> None:
        """Submit the parked batches whose environment's first worker is ready (or failed:
        the batch then fails as its environment did)."""
        if self._env_warm:
            refs = list(self._env_warm.values())
            done, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
            if done:
                done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            done = set(done)
            self._env_warm = {k: r for k, r in self._env_warm.items() if r not in done}
        go = [b for b in self._parked if _env_key(b.options["runtime_env"]) not in self._env_warm]
        going = {id(b) for b in go}
        self._parked = [b for b in self._parked if id(b) not in going]
        for batch in go:
            self.submit(batch)

    def wait(self, timeout: float) -> list[BatchResult]:
        if self._parked:
            self._unpark(0 if self._pending else timeout)
        if not self._pending:
            return []
        self._cancel_unschedulable()
        refs = list(self._pending)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[BatchResult] = []
        for handle in ready:
            if handle in self._stage:
                out.extend(self._advance(handle))
            else:
                out.append(self._collect(handle))
        return out

    def cancel_where(self, predicate) -> None:
        self._env_warm.clear()  # parked batches go now, to be cancelled with the rest
        parked, self._parked = self._parked, []
        for batch in parked:
            self.submit(batch)
        for handle, batch in list(self._pending.items()):
            if predicate(batch):
                try:  # force: a task waiting in its checkpoint sees no gentler cancel
                    self._ray.cancel(handle, force=True)
                except Exception:  # noqa: BLE001 - it may have ended meanwhile
                    pass

    def _advance(self, gen) -> list[BatchResult]:
        """Take what a batch's generator has yielded since the last look."""
        batch = self._pending[gen]
        out: list[BatchResult] = []
        while True:
            stage = self._stage[gen]
            try:
                ref = next(gen)
            except StopIteration:
                # It ended before its last item: the last ref it yielded holds the error (the
                # segment's place, when its checkpoint failed; else the payload's).
                last = batch.segment_ref if stage == 3 else batch.payload_ref
                return out + self._failed(gen, batch, self._error_of(last))
            except Exception as exc:  # noqa: BLE001 - the worker died, the task was cancelled
                return out + self._failed(gen, batch, exc)
            if stage == 0:
                batch.payload_ref = ref  # fetched by the tasks that read it, never here
            elif stage == 2:
                batch.segment_ref = ref  # fetched by the join's worker, never here
            else:
                try:
                    outcomes = self._ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the batch's error
                    return out + self._failed(gen, batch, exc)
                if stage == 1:
                    if any(o is not None for o in outcomes):
                        out.append(BatchResult(batch, outcomes, batch.payload_ref,
                                               phase="delivered"))
                else:
                    self._forget(gen)
                    return out + [BatchResult(batch, outcomes, batch.payload_ref)]
            self._stage[gen] = stage + 1
            more, _ = self._ray.wait([gen], num_returns=1, timeout=0)
            if not more:
                return out

    def _error_of(self, ref) -> BaseException:
        try:
            self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            return exc
        return RuntimeError("the Ray task ended without its results")

    def _forget(self, handle) -> None:
        self._pending.pop(handle, None)
        self._stage.pop(handle, None)

    def _failed(self, gen, batch: Batch, exc: BaseException) -> list[BatchResult]:
        delivered = self._stage.get(gen, 0) >= 2
        self._forget(gen)
        error = self._task_error(gen, batch, exc)
        # A gang's member is never run again alone: its death fails the gang (gang.py).
        if (error.kind is ErrorKind.SYSTEM and not delivered and batch.gang is None and
                batch.system_attempts < self.system_retries and
                not isinstance(exc, self._ray.exceptions.TaskCancelledError)):
            batch.system_attempts += 1
            self.submit(batch)  # its worker died before it delivered: run it again
            return []
        return [BatchResult(batch, None, error=error)]

    def _task_error(self, handle, batch: Batch, exc: BaseException) -> TaskError:
        ray = self._ray
        if isinstance(exc, ray.exceptions.TaskCancelledError):
            why = self._unschedulable.pop(handle, None)
            if why:
                return TaskError.from_exception(SchedulingError(why, step=batch.step))
            return TaskError.system(RuntimeError(
                f"the Ray task of step {batch.step!r} was cancelled"))
        if isinstance(exc, ray.exceptions.RuntimeEnvSetupError):
            return TaskError.from_exception(_environment_failed(batch.step, exc))
        if isinstance(exc, ray.exceptions.RayTaskError):
            # The batch's own code failed outside any task (not a user step: those become
            # failed outcomes), e.g. the flow file no longer imports on this worker.
            cause = getattr(exc, "cause", None)
            if cause is not None and not isinstance(cause, ray.exceptions.RayError):
                return TaskError.from_exception(cause)
            return TaskError.system(exc)
        return TaskError.system(exc)

    def _collect(self, ref) -> BatchResult:
        """A batch run as a plain task (an actor pool's): one result, durable."""
        batch = self._pending.pop(ref)
        try:
            outcomes = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001
            return BatchResult(batch, None, error=self._task_error(ref, batch, exc))
        return BatchResult(batch, outcomes, batch.payload_ref)

    def _cancel_unschedulable(self) -> None:
        by_batch = {id(b): ref for ref, b in self._pending.items()}
        for batch in self._watch.overdue(list(self._pending.values())):
            ref = by_batch[id(batch)]
            self._unschedulable[ref] = self._watch.describe(batch, self._ray)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it may have started meanwhile
                pass

    def slice(self, loc, chunk: int, num_chunks: int) -> list:
        out = self._slicer.options(num_returns=num_chunks, num_cpus=0).remote(
            self._ctx_ref, loc, chunk, num_chunks)
        return [out] if num_chunks == 1 else list(out)

    def shutdown(self) -> None:
        self._parked.clear()
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        self._pending.clear()
        self._stage.clear()
