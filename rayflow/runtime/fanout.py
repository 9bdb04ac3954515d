"""A streaming fan-out: a batch of foreach splits that all go straight into their join comes
back to the driver as one summary, not one outcome per split.

The common shape `start -> foreach -> work -> join` sends each batch of `work` splits as an
index range (`batching.SplitSpecs`); when every split of it succeeded and hands on to the join
that closes its foreach, the worker returns:

- a `BatchSummary`: what the driver needs of the batch as a whole (how many, when, where,
  the durations for the report's statistics), instead of a `TaskOutcome` per split;
- a *segment*: the splits' own artifact locations as a small `JoinTable` (columns, pickled and
  compressed), yielded
  as a task return of its own so that it stays in the object store, owned by the driver,
  and is fetched only by the join's worker (`JoinTable.add_segment`, `_materialize`).

So the driver keeps a few objects per batch and nothing per split: its memory does not grow
with the foreach's width. Any other batch (a failure, a retry, a @catch, a split that deleted
or adopted artifacts, a foreach inside the split, a resume) takes the per-split path, with
the same records and lineage either way: only what the driver is told differs.
"""

from __future__ import annotations

import pickle
import zlib
from array import array
from dataclasses import dataclass

from ..exceptions import RayflowException
from .wire import by_position


@by_position
@dataclass(slots=True)
class BatchSummary:
    """A batch of splits that all succeeded into their foreach's join."""

    step: str
    count: int
    started: float          # the earliest start of a split of the batch
    finished: float         # the latest finish
    durations: bytes        # array("f") of each split's duration, for the report
    node: str
    worker: int
    peak_rss: int
    printed: int
    console: tuple = ()     # the splits' held console pieces, in split order (console.py)

    def duration_array(self) -> array:
        out = array("f")
        out.frombytes(self.durations)
        return out


def summarize(graph, specs, captured) -> tuple[BatchSummary | None, object]:
    """(summary, segment) of a batch whose splits may skip the per-split path, else
    (None, None). `specs`: the batch's TaskSpecs (of a SplitSpecs), `captured` their
    CapturedTasks, persisted."""
    if not captured:
        return None, None
    first = captured[0].outcome
    join = _join_of(graph, specs[0], first.next_steps)
    if join is None:
        return None, None
    rows = []
    for spec, cap in zip(specs, captured):
        o = cap.outcome
        if not o.ok or o.caught or o.error is not None or o.adopted or o.removed or \
                o.foreach is not None or o.next_steps != first.next_steps:
            return None, None
        rows.append((spec.step, spec.task_id, o.new))
    from .joins import JoinTable

    # Compressed: a small task return stays in the driver's own memory until the join
    # (Ray keeps objects under 100 KB with their owner), and a segment's columns repeat
    # (one name, one type, consecutive ids): about 220 bytes a split pickled, 57 compressed.
    segment = zlib.compress(pickle.dumps(JoinTable.of(rows), protocol=5), 1)
    durations = array("f", [c.outcome.finished_at - c.outcome.started_at for c in captured])
    summary = BatchSummary(
        specs[0].step, len(captured), min(c.outcome.started_at for c in captured),
        max(c.outcome.finished_at for c in captured), durations.tobytes(), first.node,
        first.worker, max(c.outcome.peak_rss for c in captured),
        sum(c.outcome.printed for c in captured),
        tuple(p for c in captured if c.outcome.console for p in c.outcome.console))
    return summary, segment


def _join_of(graph, spec, next_steps) -> str | None:
    """The foreach join `spec`'s step hands on to, when it closes the split's own foreach."""
    own = graph[spec.step]
    if len(next_steps) != 1 or not spec.foreach_stack or own.foreach_param or \
            tuple(next_steps) != tuple(own.out_funcs):
        return None  # anything else: the driver checks the transition, split by split
    node = graph[next_steps[0]]
    if node.type != "join" or not node.is_foreach_join:
        return None
    return node.name if node.join_of == spec.foreach_stack[-1][0] else None


# Measured before the streaming fan-out: the driver grew by 538 MiB over a 1,000,000-split
# foreach with one artifact a split (its join table, the report's rows, and the join's spec as
# it is sent); splits that set more artifacts cost about 60 bytes more for each. A resume still
# takes that way (each split is matched to its origin).
DRIVER_BYTES_PER_SPLIT = 640
# Streamed, a batch costs the driver a few objects and a split nothing; what falls back to the
# per-split way (a retried split: its join columns and report row) costs about this much, the
# figure used for a fresh run's worst case.
STREAMED_BYTES_PER_SPLIT = 170


def check_width_fits_memory(step: str, num_splits: int, per_split: int) -> None:
    """No fixed cap on a foreach: only the driver's memory bounds it, and this says so.
    `per_split`: the driver's bytes a split at worst (see the figures above)."""
    import psutil

    need = num_splits * per_split
    have = psutil.virtual_memory().available
    if need > 0.8 * have:
        raise RayflowException(
            f"Step {step!r} fans out into {num_splits:,} splits. rayflow has no cap on a "
            f"foreach, but the driver may keep about {per_split:,} bytes per split, "
            f"{need / 2**30:.1f} GiB here, and this machine has {have / 2**30:.1f} GiB "
            f"available. Fan out over fewer, larger items (e.g. chunks of rows), or run the "
            f"driver on a machine with more memory.", step=step)
