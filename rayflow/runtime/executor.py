"""Executors: how a batch of TaskSpecs gets run. One interface, two implementations.

`RayExecutor` submits each batch as one Ray task (`num_returns=2`: the small outcomes, and the
payload of artifact values, which stays in the object store and is owned by the driver so that
it outlives the worker). `InlineExecutor` runs batches in this process, synchronously; it exists
for debugging and so the runner and scheduler can be tested without Ray. Both pass the same
contract tests.

The runner never blocks on one task: `wait(timeout)` hands back every batch that finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .artifacts import InlineRef
from .spec import RunContext, TaskSpec


@dataclass
class Batch:
    """One submission: tasks of one step, run together in one Ray task."""

    step: str
    tasks: list  # ReadyTask
    specs: list[TaskSpec]
    options: dict = field(default_factory=dict)
    timeout: float | None = None
    submitted_at: float = 0.0
    handle: Any = None
    payload_ref: Any = None


@dataclass
class BatchResult:
    batch: Batch
    outcomes: list | None  # TaskOutcome list, or None when the whole batch failed
    payload_ref: Any = None
    error: dict | None = None  # for a batch that failed as a whole (crash, cancel, ...)


def _entry(ctx, specs, extra):
    # Imported inside the worker; kept tiny so the pickled function is a reference.
    from .task import execute_batch

    return execute_batch(ctx, specs, extra)


def _slice(ctx, loc, chunk, num_chunks):
    from .task import slice_items

    return slice_items(ctx, loc, chunk, num_chunks)


class InlineExecutor:
    """Runs every batch at once, in this process."""

    name = "inline"

    def __init__(self):
        self._done: list[BatchResult] = []

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def put(self, value):
        return value

    def total_cpus(self) -> int:
        return 1

    def submit(self, ctx: RunContext, batch: Batch, extra_decorators=()) -> None:
        from .task import execute_batch

        batch.submitted_at = time.time()
        outcomes, payload = execute_batch(ctx, batch.specs, extra_decorators)
        self._done.append(BatchResult(batch, outcomes, InlineRef(payload)))

    def wait(self, timeout: float) -> list[BatchResult]:
        done, self._done = self._done, []
        return done

    def slice(self, ctx: RunContext, loc, chunk: int, num_chunks: int) -> list:
        from .task import slice_items

        out = slice_items(ctx, loc, chunk, num_chunks)
        chunks = [out] if num_chunks == 1 else list(out)
        return [InlineRef(c) for c in chunks]

    def shutdown(self) -> None:
        pass


class RayExecutor:
    """Submits batches as Ray tasks, and collects them in windows with ray.wait."""

    name = "ray"

    def __init__(self, system_retries: int = 3):
        import ray

        self._ray = ray
        self._remote = ray.remote(_entry)
        self._slicer = ray.remote(_slice)
        self._pending: dict[Any, Batch] = {}
        self.system_retries = system_retries
        from .cluster import FeasibilityWatch

        self._watch = FeasibilityWatch(ray)
        self._unschedulable: dict[Any, str] = {}

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def put(self, value):
        return self._ray.put(value)

    def total_cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def submit(self, ctx_ref, batch: Batch, extra_decorators=()) -> None:
        opts = dict(batch.options)
        opts.update(num_returns=2, retry_exceptions=False, name=batch.step,
                    max_retries=self.system_retries + opts.pop("extra_retries", 0))
        out_ref, payload_ref = self._remote.options(**opts).remote(
            ctx_ref, batch.specs, list(extra_decorators))
        batch.handle, batch.payload_ref = out_ref, payload_ref
        batch.submitted_at = time.time()
        self._pending[out_ref] = batch

    def wait(self, timeout: float) -> list[BatchResult]:
        if not self._pending:
            return []
        self._cancel_overdue()
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
                err = _batch_error("SchedulingError", why)
                err["retryable"] = False
                return BatchResult(batch, None, error=err)
            return BatchResult(batch, None, error=_batch_error(
                "TimeoutException", f"timed out after {batch.timeout:g} s (@timeout)"))
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if cause is not None:
                return BatchResult(batch, None, error=_batch_error(
                    type(cause).__name__, str(cause), user=False))
            return BatchResult(batch, None, error=_batch_error(type(exc).__name__, str(exc)))
        except self._ray.exceptions.RayError as exc:
            return BatchResult(batch, None, error=_batch_error(type(exc).__name__, str(exc)))
        return BatchResult(batch, outcomes, batch.payload_ref)

    def _cancel_overdue(self) -> None:
        """@timeout inside the worker uses SIGALRM; this catches steps stuck in C code."""
        now = time.time()
        for ref, batch in list(self._pending.items()):
            if batch.timeout and now - batch.submitted_at > batch.timeout + 10:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - the task may have just finished
                    pass
                batch.timeout_cancelled = True

    def _cancel_unschedulable(self) -> None:
        by_batch = {id(b): ref for ref, b in self._pending.items()}
        for batch in self._watch.overdue(list(self._pending.values())):
            ref = by_batch[id(batch)]
            self._unschedulable[ref] = self._watch.describe(batch, self._ray)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it may have started meanwhile
                pass

    def slice(self, ctx_ref, loc, chunk: int, num_chunks: int) -> list:
        out = self._slicer.options(num_returns=num_chunks, num_cpus=0).remote(
            ctx_ref, loc, chunk, num_chunks)
        return [out] if num_chunks == 1 else list(out)

    def shutdown(self) -> None:
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        self._pending.clear()


def _batch_error(kind: str, message: str, user: bool = False) -> dict:
    return {"type": kind, "message": message, "traceback": "", "user": user,
            "retryable": True}
