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

import copy
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
        return whole(best)

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
        art_common, art_columns = dict(arts["common"]), dict(arts["columns"])
        if any(len(col) != count for col in (*columns.values(), *art_columns.values())):
            raise ValueError("a column's length is not the bundle's count")
        if "iteration" not in common and "iteration" not in columns:
            # Not written by this version: the record's own rules (ids like "3.2") apply.
            return [record_from_fields({**common, **{k: c[i] for k, c in columns.items()}},
                                       _artifacts_at(i, _infos(art_common),
                                                     _infos(art_columns)))
                    for i in range(count)]
        src = _Columns(common, columns, art_common, art_columns, field_names(TaskRecord), what)
        ids = src.column("task_id", count)
        attempts = [int(a) for a in src.column("attempt", count, 0)]
        statuses = src.column("status", count)
        caught = src.column("caught", count, False)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DamagedRecordError(f"The stored {what} is not a whole bundle ({exc}); the file "
                                 "is damaged. `rayflow resume` runs the tasks it recorded "
                                 "again.") from None
    # One small object a task, made whole only when a field other than these is read: a
    # reader listing 100,000 tasks builds no record it does not look into.
    return [BundledRecord(t, a, st, c, src, i)
            for i, (t, a, st, c) in enumerate(zip(ids, attempts, statuses, caught))]


def _infos(arts: dict) -> dict:
    """Artifact infos of a bundle, decoded: {name: info} or {name: [info or None, ...]}."""
    return {n: (ArtifactInfo.from_json(j) if isinstance(j, dict) else
                [None if x is None else ArtifactInfo.from_json(x) for x in j])
            for n, j in arts.items()}


class _Columns:
    """The columns of one bundle, shared by its `BundledRecord`s."""

    __slots__ = ("base", "cols", "art_common", "art_columns", "stack", "what")

    def __init__(self, common: dict, columns: dict, art_common: dict, art_columns: dict,
                 known: frozenset, what: str):
        self.what = what
        self.base = {k: v for k, v in common.items() if k in known}
        self.cols = {k: c for k, c in columns.items() if k in known}
        self.art_common = _infos(art_common)
        self.art_columns = art_columns   # JSON, decoded a record at a time
        self.stack = [tuple(frame) for frame in self.base.get("foreach_stack", [])]

    def column(self, name: str, count: int, default=None) -> list:
        col = self.cols.get(name)
        return col if col is not None else [self.base.get(name, default)] * count

    def record(self, i: int) -> TaskRecord:
        try:
            return self._record(i)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise DamagedRecordError(
                f"The stored {self.what} is not a whole bundle ({exc!r}); the file is "
                "damaged. `rayflow resume` runs the tasks it recorded again.") from None

    def _record(self, i: int) -> TaskRecord:
        fields = self.base.copy()
        for name, col in self.cols.items():
            fields[name] = col[i]
        own = dict(self.art_common)
        for name, col in self.art_columns.items():
            info = col[i]
            if info is not None:
                own[name] = ArtifactInfo.from_json(info)
        fields["artifacts"] = own
        stacks = self.cols.get("foreach_stack")
        fields["foreach_stack"] = list(self.stack) if stacks is None else \
            [tuple(frame) for frame in stacks[i]]
        fields["attempt"] = int(fields.get("attempt", 0))
        return TaskRecord(**fields)


class BundledRecord:
    """A TaskRecord kept in a bundle: its id, attempt, status and whether @catch caught it at
    hand (what listing a step reads), every other field
    read from the bundle's columns the first time one is asked for (then the whole record,
    a `TaskRecord`, answers). Reads as a TaskRecord does."""

    __slots__ = ("task_id", "attempt", "status", "caught", "_src", "_i", "_whole")

    def __init__(self, task_id: str, attempt: int, status: str, caught, src: _Columns,
                 i: int):
        self.task_id, self.attempt, self.status, self.caught = task_id, attempt, status, caught
        self._src, self._i, self._whole = src, i, None

    def whole(self) -> TaskRecord:
        whole = self._whole
        if whole is None:
            whole = self._whole = self._src.record(self._i)
        return whole

    def __getattr__(self, name: str):
        if name.startswith("__") or name in BundledRecord.__slots__:
            raise AttributeError(name)
        return getattr(self.whole(), name)

    def __eq__(self, other) -> bool:
        if isinstance(other, BundledRecord):
            other = other.whole()
        return self.whole() == other

    __hash__ = None

    def __reduce_ex__(self, protocol):
        return _same, (self.whole(),)  # pickled as the TaskRecord it stands for

    def __copy__(self) -> TaskRecord:
        return copy.copy(self.whole())

    def __deepcopy__(self, memo) -> TaskRecord:
        return copy.deepcopy(self.whole(), memo)

    def __repr__(self) -> str:
        return repr(self.whole())


def whole(rec):
    """`rec` as a plain TaskRecord (a BundledRecord made whole), for code that copies or
    changes a record; None stays None."""
    return rec.whole() if isinstance(rec, BundledRecord) else rec


def _same(value):
    return value


def _artifacts_at(i: int, common: dict, columns: dict) -> dict:
    own = dict(common)
    for name, col in columns.items():
        info = col[i]
        if info is not None:
            own[name] = info
    return own
