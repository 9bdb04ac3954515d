"""Executors: how a batch of TaskSpecs gets run. One interface, several implementations.

The run loop talks to an `Executor` only. It hands the run's context over once (`start`),
submits `Batch`es, and collects whatever finished with `wait(timeout)`, which never blocks
longer than `timeout`; it never waits on one task. An executor owns where a batch runs and how
its artifact values are kept for the tasks downstream (`put` and the payload refs of a
`BatchResult`), and turns its own failures (a dead worker, a cancelled task, a task no node can
run) into a `TaskError` for the whole batch.

Implementations (this module imports none of them; `executors.make_executor` picks one):
- `InlineExecutor` (`inline_executor.py`): every batch at once, in this process. For
  debugging, and so the run loop and scheduler are tested without Ray.
- `RayExecutor` (`ray_executor.py`): each batch is one Ray task.
- `ActorPoolExecutor` (`pool_executor.py`): the steps with @actor_pool on pools of warm
  actors, the others as RayExecutor runs them.
Every executor passes the contract tests in `tests/integration/test_executor_contract.py`.
"""

from __future__ import annotations

import abc
from typing import Any

from .batching import Batch, BatchResult
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
        one ref per chunk (see `worker.slice_items`)."""

    @abc.abstractmethod
    def put(self, value: Any) -> Any:
        """A ref to `value` that tasks of this executor can read."""

    @abc.abstractmethod
    def total_cpus(self) -> int:
        """CPUs the executor can use at once: how wide the run loop keeps the queue."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Cancel whatever is still running. Called once, when the run fails."""

    def close(self) -> None:  # noqa: B027 - most executors hold nothing between batches
        """Let go of what the run held (an actor pool's actors). Called once, when it ends."""

    def watch(self, queued, note) -> None:  # noqa: B027 - only an actor pool asks
        """Hear of the run: `queued()` gives the steps of its tasks not yet submitted;
        `note(step, why)` says why a step waits (None: it no longer does)."""

    def cancel_where(self, predicate) -> None:  # noqa: B027 - in-process batches end at once
        """Cancel the batches in flight for which `predicate(batch)` is true."""
