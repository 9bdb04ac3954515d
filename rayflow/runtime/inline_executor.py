"""InlineExecutor: every batch at once, in this process (the driver's own).

For debugging, and so the run loop and scheduler are tested without Ray: a batch runs here
through the same `worker.execute_batch` a Ray worker runs.
"""

from __future__ import annotations

import time

from .artifacts import InlineRef
from .batching import Batch, BatchResult
from .executor import Executor
from .spec import RunContext
from .worker import execute_batch, slice_items


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
        outcomes, payload, segment = execute_batch(self._ctx, batch.specs, capture_fds=False,
                                                   summarize_splits=True)
        batch.segment_ref = InlineRef(segment)
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
