"""The metadata rayflow keeps per artifact, task and run, and their JSON form.

It owns the dataclasses `ArtifactInfo`, `TaskRecord` and `RunRecord` and how each becomes a JSON
dict and back. JSON written by an older or newer rayflow must still load: missing fields take
their defaults and unknown fields are ignored.

It must never read or write storage (`flow_datastore.py` does), and never import ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
from dataclasses import dataclass, field

from rayflow.exceptions import DataStoreError

RECORD_VERSION = 1


@contextlib.contextmanager
def gc_paused():
    """Build many small objects with no garbage among them (the records of a big step)
    without the collector's passes over them, which cost more than building them. What was
    built is then left out of later passes too (`gc.freeze`): those objects hold no cycles,
    so reference counting still frees them once they are dropped."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@functools.cache
def field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


@functools.cache
def field_order(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _known_fields(cls: type, data: dict) -> dict:
    """The keys of `data` that are fields of `cls`: newer writers may add fields."""
    names = field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def dumps_record(data: dict, what: str) -> bytes:
    """JSON bytes for a record dict, with an error naming the record if a value won't encode."""
    try:
        # Compact JSON: the C encoder is ~10x faster than the indenting one, which matters at
        # 100,000 task records a run.
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise DataStoreError(
            f"Cannot save {what} as JSON: {e}. Parameters, tags and transition data must be "
            "JSON values (str, int, float, bool, None, lists and dicts of them).") from e


class DamagedRecordError(DataStoreError):
    """A stored record (a task's, a bundle's, a run's) that does not parse: truncated or
    overwritten. Listings skip it and name it (DamagedRecordWarning); what it recorded counts
    as not done, so a resume runs those tasks again."""

    headline = "Damaged record"


class DamagedRecordWarning(UserWarning):
    """A listing left out a record it could not read; the message names the file."""


def damaged_advice(what: str, where: str) -> str:
    return (f"The stored {what} ({where}) is damaged and cannot be read: the tasks it "
            f"recorded count as not done. `rayflow resume` runs them again.")


def loads_record(raw: bytes, what: str) -> dict:
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise DamagedRecordError(f"The stored {what} is not valid JSON ({e}); the file is "
                                 "damaged. `rayflow resume` runs the tasks it recorded "
                                 "again.") from None
    if not isinstance(data, dict):
        raise DamagedRecordError(f"The stored {what} is not a JSON object; the file is "
                                 "damaged. `rayflow resume` runs the tasks it recorded again.")
    return data


@dataclass(frozen=True)
class ArtifactInfo:
    """Where one artifact's bytes are and how to decode them."""

    sha: str          # xxh3-128 hex of the stored bytes
    size: int         # stored bytes
    type: str         # the value's class, e.g. "pyarrow.lib.Table", "builtins.int"
    encoding: str     # "arrow-ipc", "arrow-ipc-batch", "pandas-arrow", "numpy", "pickle"
    # Tiny values (a few hundred bytes) live in the record itself, base64-encoded, instead of
    # in a blob of their own: a 100,000-split foreach would otherwise write 100,000 tiny files.
    inline: str | None = None

    def to_json(self) -> dict:
        # By hand, not dataclasses.asdict: this runs for every artifact of every task record.
        d = {"sha": self.sha, "size": self.size, "type": self.type, "encoding": self.encoding}
        if self.inline is not None:
            d["inline"] = self.inline
        return d

    @classmethod
    def from_json(cls, d: dict) -> ArtifactInfo:
        if len(d) <= 5:  # the fields this version writes: no filtering needed
            try:
                return cls(d["sha"], d["size"], d["type"], d["encoding"], d.get("inline"))
            except KeyError:
                pass
        return cls(**_known_fields(cls, d))


@dataclass
class TaskRecord:
    """Everything known about one finished attempt of a task (written before its DONE)."""

    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    status: str = "success"                     # "success" | "failed"
    artifacts: dict[str, ArtifactInfo] = field(default_factory=dict)
    foreach_stack: list[tuple[str, int, int]] = field(default_factory=list)
    iteration: int = 0                          # a recursive switch's run of the step
    foreach_num_splits: int | None = None
    transition: dict = field(default_factory=lambda: {"steps": [], "foreach": None})
    parents: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    code_hash: str = ""
    params: dict = field(default_factory=dict)
    user: str = ""
    node: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    exception: dict | None = None               # {"type", "message", "traceback", "kind"}
    origin_pathspec: str | None = None          # set on tasks cloned by resume
    python_version: str = ""                    # of the process that ran the task
    worker: int = 0                             # pid of the worker process
    peak_rss: int = 0                           # its peak resident memory, bytes
    # The step raised and @catch caught it: the task is done (the run goes on from it) but,
    # as in Metaflow, finished and not successful.
    caught: bool = False
    # Metaflow's named metadata of the task beyond the fields above (str -> str), e.g. the
    # start_step / end_step of a run's `_parameters` task.
    metadata: dict | None = None
    # @pypi/@conda: the step's requirements and the versions its process found installed.
    environment: dict | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    def to_json(self) -> dict:
        # Field names looked up once per class: this runs for every task of a big foreach.
        data = {name: getattr(self, name) for name in field_order(type(self))}
        data["artifacts"] = {name: info.to_json() for name, info in self.artifacts.items()}
        data["foreach_stack"] = [list(frame) for frame in self.foreach_stack]
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, d: dict) -> TaskRecord:
        return record_from_fields(d, {name: ArtifactInfo.from_json(info)
                                      for name, info in d.get("artifacts", {}).items()})


def record_from_fields(d: dict, artifacts: dict[str, ArtifactInfo]) -> TaskRecord:
    """A TaskRecord from its JSON fields (a record file's, or one row of a bundle's columns)
    and its artifacts, already decoded."""
    data = _known_fields(TaskRecord, d)
    data["artifacts"] = artifacts
    data["foreach_stack"] = [tuple(frame) for frame in d.get("foreach_stack", [])]
    data["attempt"] = int(d.get("attempt", 0))
    if "iteration" not in d:  # records before run-wide ids: "3.2" was iteration 2
        _, dot, it = str(d.get("task_id", "")).partition(".")
        data["iteration"] = int(it) if dot and it.isdigit() else 0
    return TaskRecord(**data)


@dataclass
class RunRecord:
    """One run of a flow: who started it, with what, and how it ended."""

    flow: str
    run_id: str
    user: str = ""
    params: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    sys_tags: list[str] = field(default_factory=list)
    code_hash: str = ""
    status: str = "running"                     # "running" | "success" | "failed"
    started_at: float = 0.0
    finished_at: float | None = None
    flow_file: str = ""
    origin_run_id: str | None = None
    datastore: str = ""
    ray_address: str | None = None
    project: dict | None = None                 # @project: name, branch, flow name, ...
    graph: dict | None = None                   # steps, transitions, resources (run report)
    dashboard_url: str | None = None            # the Ray dashboard, when Ray served one
    # Which Ray ran it: "embedded" (started by the run), "warm" (`rayflow up`'s local Ray),
    # "cluster" (--address), "none" (the inline executor); ray_address says where.
    ray_kind: str | None = None
    # The start of its first task and the end of its last (a cloned task counts when this
    # run cloned it): the run's one duration (rayflow.report.failures.run_duration).
    tasks_started_at: float | None = None
    tasks_finished_at: float | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["version"] = RECORD_VERSION
        return data

    @classmethod
    def from_json(cls, d: dict) -> RunRecord:
        return cls(**_known_fields(cls, d))


def natural_key(name: str) -> tuple:
    """Sort key for ids: numeric ids by value (so "10" follows "9", foreach task ids "3_10"
    follow "3_9", and the runs of a recursive step "3.2" follow "3.1", all after "3"), the
    rest by name after them."""
    base, dot, iteration = name.partition(".")
    parts = base.split("_")
    if all(p.isdigit() for p in parts) and (not dot or iteration.isdigit()):
        return (0, tuple(int(p) for p in parts), int(iteration or 0), "")
    return (1, (), 0, name)
