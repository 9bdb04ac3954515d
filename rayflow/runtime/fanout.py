"""A streaming fan-out: a batch of foreach splits that all go straight into their join comes
back to the driver as one summary, not one outcome per split.

The common shape `start -> foreach -> work -> join` sends each batch of `work` splits as an
index range (`batching.SplitSpecs`); when every split of it succeeded and hands on to the join
that closes its foreach, the worker returns:

- a `BatchSummary`: what the driver needs of the batch as a whole (how many, when, where,
  the durations for the report's statistics), instead of a `TaskOutcome` per split;
- a *segment*: the splits' own artifact locations as a small `JoinTable` (columns, pickled and
  compressed), written by the worker to the datastore beside the batch's bundle
  (`<step>/_segments/`, a folder no reader lists) and read only by the join's worker
  (`JoinTable.add_segment`, `_materialize`). The summary names it.

The driver keeps a constant-size record per batch (a few numbers and the segment's name) and
nothing per split, and holds no Ray object of a finished batch: when every value the batch
made is small enough to live in its record (inline), the join reads them from the segment and
the batch's payload is let go at once. Only a batch with a bigger value keeps its payload for
the join (the value in Ray's object store, which a small payload would put in the driver's own
memory). The chunks of the foreach variable's items go too, each once all its splits have
come back this way. So the driver's memory does not grow with the foreach's width: measured
by `tests/integration/test_streaming_fanout.py` (Python objects, and what the driver holds in
Ray), and by benchmarks/foreach_scale.py (its peak RSS up to 10,000,000 splits).

Any other batch (a failure, a retry, a @catch, a split that deleted or adopted artifacts, a
foreach inside the split, a resume) takes the per-split path, with the same records and
lineage either way: only what the driver is told differs.
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
    segment: str = ""        # the batch's join segment in the datastore ("": sent as a return)
    needs_payload: bool = True  # a value of the batch is not inline: the join reads the payload

    def duration_array(self) -> array:
        out = array("f")
        out.frombytes(self.durations)
        return out


SEGMENT_DIR = "_segments"


def summarize(graph, specs, captured, ds=None, run_id: str = "") -> tuple[BatchSummary | None,
                                                                          object]:
    """(summary, segment) of a batch whose splits may skip the per-split path, else
    (None, None). `specs`: the batch's TaskSpecs (of a SplitSpecs), `captured` their
    CapturedTasks, persisted. With `ds` (the run's FlowDataStore, and the run's id) the
    segment is written there and the summary names it (the segment returned is then None);
    a segment that cannot be written sends the batch the per-split way instead."""
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

    # Compressed: a segment's columns repeat (one name, one type, consecutive ids): about
    # 220 bytes a split pickled, 57 compressed.
    segment = zlib.compress(pickle.dumps(JoinTable.of(rows), protocol=5), 1)
    needs_payload = any(loc.inline is None for row in rows for loc in row[2].values())
    path = ""
    if ds is not None:
        path = _write_segment(ds, run_id, specs[0], len(specs), segment)
        if path is None:
            return None, None
        segment = None
    durations = array("f", [c.outcome.finished_at - c.outcome.started_at for c in captured])
    summary = BatchSummary(
        specs[0].step, len(captured), min(c.outcome.started_at for c in captured),
        max(c.outcome.finished_at for c in captured), durations.tobytes(), first.node,
        first.worker, max(c.outcome.peak_rss for c in captured),
        sum(c.outcome.printed for c in captured),
        tuple(p for c in captured if c.outcome.console for p in c.outcome.console), path,
        needs_payload)
    return summary, segment


def join_adder(batch, summary: BatchSummary, store: tuple):
    """What puts a finished batch into its join's table (`scheduler.segment_done`'s `add`):
    its segment in the datastore by name (`store`: the datastore's url and the flow's name),
    and the batch's payload only when the join must read a value from it (one not inline).
    The batch lets go of both, and its fan-out of the chunks of its items that no split still
    needs, so Ray frees what the join does not need."""
    fan, start = batch.tasks.fan, batch.specs.start
    fan.splits_done(start, summary.count)
    segment = (*store, summary.segment) if summary.segment else batch.segment_ref
    payload = batch.payload_ref if summary.needs_payload else None
    batch.payload_ref = batch.segment_ref = None
    return lambda table: table.add_segment(start, summary.count, fan.step, fan.first_id + start,
                                           fan.parent.scope, payload, segment)


def _write_segment(ds, run_id: str, head, count: int, segment: bytes) -> str | None:
    """Where the segment was written; None when it could not be (the per-split way then still
    joins every split). Named by the batch's task range and attempt, as its bundle is: a rerun
    of the batch writes the same name again."""
    path = (f"{ds.step_path(run_id, head.step)}/{SEGMENT_DIR}/"
            f"{head.task_id}~{count}~{int(head.attempt)}.seg")
    try:
        ds.storage.put(path, segment)
    except Exception:  # noqa: BLE001 - see above
        return None
    return path


def read_segments(store: tuple, paths: list[str]) -> list[bytes]:
    """The segments `paths` of the datastore `store` (its url and the flow's name), read in
    one parallel batch (in the join's worker)."""
    from .worker import datastore_for

    return datastore_for(*store).storage.get_many(paths)


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
# Streamed, a batch costs the driver a constant-size record and a split nothing (measured: a
# peak RSS of 164 MiB at 1,000,000 splits, RESULTS.md foreach_memory); what falls back to the
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
