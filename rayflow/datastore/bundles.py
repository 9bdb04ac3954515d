"""Task bundles: the records of a batch of foreach splits, committed by one atomic write.

When the runtime runs many tiny splits as one Ray task (`rayflow/runtime/batching.py` decides
which), writing a record and a DONE marker per split would cost more than the splits. Instead
the batch's records go into one bundle file per step:

    <Flow>/<run_id>/<step>/_bundles/<first>~<last>~<count>~<attempt>.json

holding `{"records": [TaskRecord JSON, ...]}`. Its single atomic write is the DONE of every
successful record in it. The name gives the range of task ids it covers, so finding one task
reads only the bundles whose range holds it. A task may appear in several bundles (a failed
attempt, then its retry): the best record wins, a success over a failure, then the latest
attempt.

This half of batching lives in the datastore because the client reads bundles with no runtime
(and no Ray) present. It must never decide what goes into a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from rayflow.datastore.records import (
    TaskRecord,
    dumps_record,
    gc_paused,
    loads_record,
    natural_key,
)
from rayflow.datastore.storage import DataStoreStorage

BUNDLE_DIR = "_bundles"


def better(rec: TaskRecord, than: TaskRecord | None) -> bool:
    """Whether `rec` is a better record of its task than `than`."""
    if than is None:
        return True
    return (rec.status == "success", rec.attempt) > (than.status == "success", than.attempt)


class TaskBundles:
    """The bundles of one flow's steps, under `step_path(run_id, step)/_bundles/`."""

    def __init__(self, storage: DataStoreStorage, step_path, pathspec):
        self.storage = storage
        self._step_path = step_path    # (run_id, step) -> the step's folder
        self._pathspec = pathspec      # (*parts) -> "Flow/..." for messages

    def _dir(self, run_id: str, step: str) -> str:
        return f"{self._step_path(run_id, step)}/{BUNDLE_DIR}"

    def write(self, recs: Sequence[TaskRecord]) -> None:
        """One bundle of `recs`, which are tasks of one step of one run."""
        first, last = recs[0], recs[-1]
        name = f"{first.task_id}~{last.task_id}~{len(recs)}~{int(first.attempt)}.json"
        what = f"task records of {self._pathspec(first.run_id, first.step)}"
        self.storage.put(f"{self._dir(first.run_id, first.step)}/{name}",
                         dumps_record({"records": [r.to_json() for r in recs]}, what))

    def names(self, run_id: str, step: str) -> list[str]:
        return [n for n in self.storage.list(self._dir(run_id, step)) if n.endswith(".json")]

    def read(self, run_id: str, step: str, name: str) -> list[TaskRecord]:
        try:
            raw = self.storage.get(f"{self._dir(run_id, step)}/{name}")
        except FileNotFoundError:
            return []
        data = loads_record(raw, f"task bundle {name} of {self._pathspec(run_id, step)}")
        return [TaskRecord.from_json(r) for r in data.get("records", [])]

    def best_all_of(self, run_id: str, step: str, names: list[str]) -> dict[str, TaskRecord]:
        """The best record of every task in the bundles `names`, read in one parallel batch."""
        base = self._dir(run_id, step)
        out: dict[str, TaskRecord] = {}
        raws = self.storage.get_many([f"{base}/{n}" for n in names])
        with gc_paused():
            for name, raw in zip(names, raws):
                data = loads_record(raw, f"task bundle {name} of {self._pathspec(run_id, step)}")
                for r in data.get("records", []):
                    rec = TaskRecord.from_json(r)
                    if better(rec, out.get(rec.task_id)):
                        out[rec.task_id] = rec
        return out

    def best_of(self, run_id: str, step: str, task_id: str) -> TaskRecord | None:
        """The best bundled record of one task, or None."""
        key = natural_key(task_id)
        best = None
        for name in self.names(run_id, step):
            first, _, rest = name.partition("~")
            last = rest.partition("~")[0]
            if not (natural_key(first) <= key <= natural_key(last)):
                continue
            for rec in self.read(run_id, step, name):
                if rec.task_id == task_id and better(rec, best):
                    best = rec
        return best

    def best_all(self, run_id: str, step: str) -> dict[str, TaskRecord]:
        """The best bundled record of every bundled task of a step."""
        out: dict[str, TaskRecord] = {}
        for name in self.names(run_id, step):
            for rec in self.read(run_id, step, name):
                if better(rec, out.get(rec.task_id)):
                    out[rec.task_id] = rec
        return out
