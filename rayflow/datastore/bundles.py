"""Task bundles: the records of a batch of foreach splits, committed by one atomic write.

When the runtime runs many tiny splits as one Ray task (`rayflow/runtime/batching.py` decides
which), writing a record and a DONE marker per split would cost more than the splits. Instead
the batch's records go into one bundle file per step:

    <Flow>/<run_id>/<step>/_bundles/<first>~<last>~<count>~<attempt>.json

holding the batch's records column by column: `{"format": "columns", "count": n, "common":
{field: value}, "columns": {field: [value per record]}, "artifacts": {"common": {name: info},
"columns": {name: [info or null per record]}}}`. A field (or an artifact) that every record of
the batch shares, such as the flow, the run, the parameters, the code hash, the parents of a
foreach's splits or the inherited artifacts, is written once; only what differs (task id,
times, the split's own artifacts) is a column. Writing and reading such a file costs a few
microseconds a task where a list of whole records cost tens. Bundles written before this as
`{"records": [TaskRecord JSON, ...]}` are read as they were. A bundle's single atomic write is
the DONE of every successful record in it. The name gives the range of task ids it covers, so
finding one task reads only the bundles whose range holds it. A task may appear in several
bundles (a failed attempt, then its retry): the best record wins, a success over a failure,
then the latest attempt.

This half of batching lives in the datastore because the client reads bundles with no runtime
(and no Ray) present. It must never decide what goes into a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from operator import attrgetter

from rayflow.datastore.records import (
    RECORD_VERSION,
    ArtifactInfo,
    DamagedRecordError,
    DamagedRecordWarning,
    TaskRecord,
    damaged_advice,
    dumps_record,
    field_names,
    field_order,
    gc_paused,
    loads_record,
    natural_key,
    record_from_fields,
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
                         dumps_record(to_columns(recs), what))

    def names(self, run_id: str, step: str) -> list[str]:
        return [n for n in self.storage.list(self._dir(run_id, step)) if n.endswith(".json")]

    def read(self, run_id: str, step: str, name: str) -> list[TaskRecord]:
        """The records of one bundle; none, with a DamagedRecordWarning naming the file, when
        it cannot be read (its tasks count as not done)."""
        try:
            raw = self.storage.get(f"{self._dir(run_id, step)}/{name}")
        except FileNotFoundError:
            return []
        return self._parse(run_id, step, name, raw)

    def _parse(self, run_id: str, step: str, name: str, raw: bytes) -> list[TaskRecord]:
        what = f"task bundle {name} of {self._pathspec(run_id, step)}"
        try:
            return records_of(loads_record(raw, what), what)
        except DamagedRecordError:
            where = self.storage.describe(f"{self._dir(run_id, step)}/{name}")
            warnings.warn(damaged_advice(what, where), DamagedRecordWarning, stacklevel=2)
            return []

    def best_all_of(self, run_id: str, step: str, names: list[str]) -> dict[str, TaskRecord]:
        """The best record of every task in the bundles `names`, read in one parallel batch."""
        base = self._dir(run_id, step)
        out: dict[str, TaskRecord] = {}
        raws = self.storage.get_many([f"{base}/{n}" for n in names])
        with gc_paused():
            for name, raw in zip(names, raws):
                for rec in self._parse(run_id, step, name, raw):
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


_SPECIAL = ("artifacts",)


def to_columns(recs: Sequence[TaskRecord]) -> dict:
    """A bundle's JSON document: each field once when every record has the same value, else
    as a column; artifacts likewise, name by name."""
    common: dict = {"version": RECORD_VERSION}
    columns: dict = {}
    for name in field_order(TaskRecord):
        if name in _SPECIAL:
            continue
        values = list(map(attrgetter(name), recs))
        first = values[0]
        # list.count compares by identity first, then ==, in C.
        if values.count(first) == len(values):
            common[name] = first
        else:
            columns[name] = values
    names: dict[str, None] = {}
    for r in recs:
        names.update(dict.fromkeys(r.artifacts))
    art_common, art_columns = {}, {}
    for name in names:
        infos = [r.artifacts.get(name) for r in recs]
        first = infos[0]
        if first is not None and infos.count(first) == len(infos):
            art_common[name] = first.to_json()
        else:
            art_columns[name] = [None if i is None else i.to_json() for i in infos]
    return {"format": "columns", "count": len(recs), "common": common, "columns": columns,
            "artifacts": {"common": art_common, "columns": art_columns}}


def records_of(data: dict, what: str) -> list[TaskRecord]:
    """The records of a bundle's JSON document, in either format."""
    if data.get("format") != "columns":
        return [TaskRecord.from_json(r) for r in data.get("records", [])]
    try:
        count = int(data["count"])
        common, columns = dict(data["common"]), data["columns"]
        arts = data["artifacts"]
        art_common = {n: ArtifactInfo.from_json(j) for n, j in arts["common"].items()}
        art_columns = {n: [None if j is None else ArtifactInfo.from_json(j) for j in col]
                       for n, col in arts["columns"].items()}
        if any(len(col) != count for col in (*columns.values(), *art_columns.values())):
            raise ValueError("a column's length is not the bundle's count")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DamagedRecordError(f"The stored {what} is not a whole bundle ({exc}); the file "
                                 "is damaged. `rayflow resume` runs the tasks it recorded "
                                 "again.") from None
    known = field_names(TaskRecord)
    if "iteration" not in common and "iteration" not in columns:
        # Not written by this version: the record's own rules (ids like "3.2") apply.
        return [record_from_fields({**common, **{k: c[i] for k, c in columns.items()}},
                                   _artifacts_at(i, art_common, art_columns))
                for i in range(count)]
    base = {k: v for k, v in common.items() if k in known}
    cols = {k: c for k, c in columns.items() if k in known}
    base["attempt"] = int(base.get("attempt", 0))
    stack = [tuple(frame) for frame in base.get("foreach_stack", [])]
    stacks = cols.pop("foreach_stack", None)
    attempts = cols.pop("attempt", None)
    # Column by column into each record's fields: one pass over each column, not a lookup
    # per record and field.
    rows = [base.copy() for _ in range(count)]
    for name, col in cols.items():
        for fields, value in zip(rows, col):
            fields[name] = value
    out = []
    for i, fields in enumerate(rows):
        fields["artifacts"] = _artifacts_at(i, art_common, art_columns)
        fields["foreach_stack"] = list(stack) if stacks is None else \
            [tuple(frame) for frame in stacks[i]]
        if attempts is not None:
            fields["attempt"] = int(attempts[i])
        out.append(TaskRecord(**fields))
    return out


def _artifacts_at(i: int, common: dict, columns: dict) -> dict:
    own = dict(common)
    for name, col in columns.items():
        info = col[i]
        if info is not None:
            own[name] = info
    return own
