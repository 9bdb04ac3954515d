"""RayExecutor: each batch is one Ray task, collected in windows with ray.wait.

A batch's Ray task has two returns (`num_returns=2`): the small outcomes, and the payload of
artifact values. The payload stays in the object store, owned by the driver because it is a
task return value, so it outlives the worker that made it. The run context is put in the
object store once and every batch reads it by reference.

Ray retries a task whose worker died (`max_retries`); user exceptions are never retried by Ray
(`retry_exceptions=False`): the runner retries them as @retry says.
"""

from __future__ import annotations

import time
from typing import Any

from ..exceptions import SchedulingError
from .batching import Batch, BatchResult
from .errors import TaskError
from .executor import Executor
from .spec import RunContext

SYSTEM_RETRIES = 3


def _entry(ctx, specs):
    # Imported inside the worker; kept tiny so the pickled function is a reference.
    from .batching import execute_batch

    return execute_batch(ctx, specs)


def _slice(ctx, loc, chunk, num_chunks):
    from .batching import slice_items

    return slice_items(ctx, loc, chunk, num_chunks)


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

    def start(self, ctx: RunContext) -> None:
        self._ctx_ref = self._ray.put(ctx)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def put(self, value):
        return self._ray.put(value)

    def total_cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def submit(self, batch: Batch) -> None:
        opts = dict(batch.options)
        opts.update(num_returns=2, retry_exceptions=False, name=batch.step,
                    max_retries=self.system_retries)
        out_ref, payload_ref = self._remote.options(**opts).remote(self._ctx_ref, batch.specs)
        batch.handle, batch.payload_ref = out_ref, payload_ref
        batch.submitted_at = time.time()
        self._pending[out_ref] = batch

    def wait(self, timeout: float) -> list[BatchResult]:
        if not self._pending:
            return []
        self._cancel_unschedulable()
        refs = list(self._pending)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref) -> BatchResult:
        batch = self._pending.pop(ref)
        try:
            outcomes = self._ray.get(ref)
        except self._ray.exceptions.TaskCancelledError:
            why = self._unschedulable.pop(ref, None)
            if why:
                return BatchResult(batch, None, error=TaskError.from_exception(
                    SchedulingError(why, step=batch.step)))
            return BatchResult(batch, None, error=TaskError.system(RuntimeError(
                f"the Ray task of step {batch.step!r} was cancelled")))
        except self._ray.exceptions.RayTaskError as exc:
            # The batch's own code failed outside any task (not a user step: those become
            # failed outcomes), e.g. the flow file no longer imports on this worker.
            cause = getattr(exc, "cause", None)
            if cause is not None:
                return BatchResult(batch, None, error=TaskError.from_exception(cause))
            return BatchResult(batch, None, error=TaskError.system(exc))
        except self._ray.exceptions.RayError as exc:
            return BatchResult(batch, None, error=TaskError.system(exc))
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
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        self._pending.clear()
