"""Executors: how a batch of TaskSpecs gets run. One interface, several implementations.

The runner talks to an `Executor` only. It hands the run's context over once (`start`),
submits `Batch`es, and collects whatever finished with `wait(timeout)`, which never blocks
longer than `timeout`; it never waits on one task. An executor owns where a batch runs and how
its artifact values are kept for the tasks downstream (`put` and the payload refs of a
`BatchResult`), and turns its own failures (a dead worker, a cancelled task, a task no node can
run) into a `TaskError` for the whole batch.

Implementations:
- `InlineExecutor` (here): every batch at once, in this process. For debugging, and so the
  runner and scheduler are tested without Ray.
- `RayExecutor` (`ray_executor.py`): each batch is one Ray task.
- `ActorPoolExecutor` (`pool.py`): the steps with @actor_pool on pools of warm actors, the
  others as RayExecutor runs them.
Every executor passes the contract tests in `tests/integration/test_executor_contract.py`.
"""

from __future__ import annotations

import abc
import time
from typing import Any

from .artifacts import InlineRef
from .batching import Batch, BatchResult, execute_batch, slice_items
from .spec import RunContext


class Executor(abc.ABC):
    name: str = "executor"

    @abc.abstractmethod
    def start(self, ctx: RunContext) -> None:
        """Take the run's context; called once, before the first submit."""

    @abc.abstractmethod
    def submit(self, batch: Batch) -> None:
        """Start running `batch`. Returns at once (an in-process executor may run it here)."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[BatchResult]:
        """Every batch that finished since the last call; waits at most `timeout` seconds for
        the first one, and not at all when nothing is in flight. A batch may come back
        twice: first "delivered" (its values can be read, its checkpoint is being written),
        then "durable"; or only once, "durable"."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Batches submitted and not yet handed back by `wait`."""

    @abc.abstractmethod
    def slice(self, loc, chunk: int, num_chunks: int) -> list:
        """Cut the foreach variable at `loc` into `num_chunks` chunks of `chunk` items; returns
        one ref per chunk (see `batching.slice_items`)."""

    @abc.abstractmethod
    def put(self, value: Any) -> Any:
        """A ref to `value` that tasks of this executor can read."""

    @abc.abstractmethod
    def total_cpus(self) -> int:
        """CPUs the executor can use at once: how wide the runner keeps the queue."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Cancel whatever is still running. Called once, when the run fails."""

    def close(self) -> None:  # noqa: B027 - most executors hold nothing between batches
        """Let go of what the run held (an actor pool's actors). Called once, when it ends."""

    def cancel_where(self, predicate) -> None:  # noqa: B027 - in-process batches end at once
        """Cancel the batches in flight for which `predicate(batch)` is true."""


class InlineExecutor(Executor):
    """Runs every batch at once, in this process."""

    name = "inline"

    def __init__(self):
        self._ctx: RunContext | None = None
        self._done: list[BatchResult] = []

    def start(self, ctx: RunContext) -> None:
        self._ctx = ctx

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def put(self, value):
        return InlineRef(value)

    def total_cpus(self) -> int:
        return 1

    def submit(self, batch: Batch) -> None:
        batch.submitted_at = time.time()
        outcomes, payload = execute_batch(self._ctx, batch.specs)
        self._done.append(BatchResult(batch, outcomes, InlineRef(payload)))

    def wait(self, timeout: float) -> list[BatchResult]:
        done, self._done = self._done, []
        return done

    def slice(self, loc, chunk: int, num_chunks: int) -> list:
        out = slice_items(self._ctx, loc, chunk, num_chunks)
        chunks = [out] if num_chunks == 1 else list(out)
        return [InlineRef(c) for c in chunks]

    def shutdown(self) -> None:
        self._done.clear()


def make_executor(name: str, graph=None, decos=None) -> Executor:
    """The executor called `name` ("ray" or "inline"). Ray must be connected for "ray"; a
    flow with @actor_pool steps gets the actor-pool executor (pool.py), which runs its other
    steps as RayExecutor does."""
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        from .ray_executor import RayExecutor

        if graph is not None and decos is not None:
            from .pool import ActorPoolExecutor, pool_configs

            pools, step_pool = pool_configs(graph, decos)
            if pools:
                return ActorPoolExecutor(pools, step_pool)
        return RayExecutor()
    from ..exceptions import RayflowException

    raise RayflowException(f"Unknown executor {name!r}: use --executor ray or --executor inline.")
