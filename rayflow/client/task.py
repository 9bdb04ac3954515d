"""Task and DataArtifact: one attempt of one task, and one artifact of it.

A Task reads its record once (`FlowDataStore.read_task`) and answers everything else from it;
only `.data`, `.stdout` and `.stderr` go back to the datastore, and artifact bytes load on first
touch because a task may hold gigabytes. Success means the record says so *and* DONE exists:
DONE is written last, so a record without it may be from an attempt that died mid-commit.
This module must never import ray.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rayflow.client.artifacts import MetaflowArtifacts, MetaflowData, TaskException
from rayflow.client.base import MetaflowObject, ObjectNotFound, split_pathspec, to_datetime
from rayflow.datastore import ArtifactInfo, TaskRecord
from rayflow.datastore.logs import decode_timed_log

if TYPE_CHECKING:
    from rayflow.client.core import Step

_NOT_LOADED = object()  # a loaded artifact may legitimately be None
FOREACH_STACK = "_foreach_stack"

# One entry of Task.metadata, with Metaflow's fields.
Metadata = namedtuple("Metadata", ["name", "value", "created_at", "type", "task"])


class Task(MetaflowObject):
    """One task (one attempt of it): its artifacts, logs, lineage and outcome."""

    _NAME = "task"
    _PATH_PARTS = ("FlowName", "RunID", "StepName", "TaskID")
    _EXAMPLE = "HelloFlow/<run_id>/start/1"
    _CHILD_KIND = "artifact"

    def __init__(self, pathspec: str, *, attempt: int | None = None,
                 datastore: str | None = None, _namespace_check: bool = True):
        # Imported here because core.py imports this module to hand out Tasks from Steps.
        from rayflow.client.core import Step

        flow_name, run_id, step_name, task_id = split_pathspec(Task, pathspec)
        step = Step(f"{flow_name}/{run_id}/{step_name}", datastore=datastore,
                    _namespace_check=_namespace_check)
        record = step._read_task(task_id, attempt)
        if record is None:
            if attempt is None or task_id not in step._child_ids():
                raise step._missing_child(task_id)
            raise ObjectNotFound(
                f"{step!r} task '{task_id}' has no attempt {attempt} in datastore "
                f"{step.datastore}. Leave out attempt= to read the latest attempt."
            )
        self._setup(step, task_id, record, attempt)

    @classmethod
    def _from_step(cls, step: Step, task_id: str, record: TaskRecord,
                   attempt: int | None) -> Task:
        task = cls.__new__(cls)
        task._setup(step, task_id, record, attempt)
        return task

    def _setup(self, step: Step, task_id: str, record: TaskRecord, attempt: int | None) -> None:
        self._step = step
        self._url = step._url
        self._components = [*step._components, task_id]
        self._record = record
        self._requested_attempt = attempt
        self._done: bool | None = None
        self._artifact_objects: dict[str, DataArtifact] = {}

    def __repr__(self) -> str:
        if self._requested_attempt is None:
            return super().__repr__()
        return f"Task('{self.pathspec}', attempt={self._requested_attempt})"

    __str__ = __repr__

    @property
    def parent(self) -> Step:
        return self._step

    @property
    def _run_id(self) -> str:
        return self._components[1]

    # -- artifacts --------------------------------------------------------------------------
    def _artifact_names(self) -> list[str]:
        """The task's artifacts, less the hidden ones (`_graph_info`, `_foreach_stack`), which
        iterating a task leaves out as in Metaflow but `task["_graph_info"]` reads."""
        return sorted(n for n in self._record.artifacts if not n.startswith("_"))

    _child_ids = _artifact_names

    def _child(self, name: str) -> DataArtifact | None:
        if name not in self._artifact_objects:
            info = self._record.artifacts.get(name)
            if info is None and name == FOREACH_STACK and not self._step.id.startswith("_"):
                info = self._foreach_stack_info()
            if info is None:
                return None
            self._artifact_objects[name] = DataArtifact._from_task(self, name, info)
        return self._artifact_objects[name]

    def _foreach_stack_info(self) -> ArtifactInfo:
        """Metaflow's hidden `_foreach_stack` artifact, a ForeachFrame(step, var, num_splits,
        index, value) per enclosing foreach, from the record (which keeps the stack for every
        task, so no task stores it twice); the variables come from the task's `_graph_info`."""
        import base64
        import dataclasses

        from rayflow.flowspec import ForeachFrame

        steps = {}
        if "_graph_info" in self._record.artifacts and self._record.foreach_stack:
            steps = (self["_graph_info"].data or {}).get("steps", {})
        value = [ForeachFrame(step, steps.get(step, {}).get("foreach_artifact"), int(num),
                              int(index), None)
                 for step, index, num in self._record.foreach_stack]
        encoded = self._store.artifacts.encode(FOREACH_STACK, value)
        if encoded.info.inline is not None:
            return encoded.info
        return dataclasses.replace(encoded.info,
                                   inline=base64.b64encode(bytes(encoded.data)).decode())

    @property
    def data(self) -> MetaflowData:
        """Artifact values by attribute, `task.data.x`; each loads on first access."""
        return MetaflowData(self)

    @property
    def artifacts(self) -> MetaflowArtifacts:
        return MetaflowArtifacts(self)

    # -- outcome ----------------------------------------------------------------------------
    def _is_done(self) -> bool:
        if self._done is None:
            self._done = self._store.is_done(self._run_id, self._step.id, self.id)
        return self._done

    @property
    def successful(self) -> bool:
        """As Metaflow's `_success`: False for a task whose exception @catch caught."""
        return self.finished and not self._record.caught

    @property
    def finished(self) -> bool:
        """True once the task completed: Metaflow's `_task_ok`, True for a task whose
        exception @catch caught, False for a failed task (whose record still holds what it
        set before it failed)."""
        return self._is_done() and self._record.status == "success"

    def _ended(self) -> bool:
        """The attempt is over, successfully or not (it has its finished_at for good)."""
        return self._is_done() or self._record.status == "failed"

    @property
    def runtime_name(self) -> str | None:
        """What ran the task, from the `runtime:` system tag ("rayflow"; Metaflow's local
        runtime says "dev")."""
        return next((t.split(":", 1)[1] for t in sorted(self.system_tags)
                     if t.startswith("runtime:")), None)

    @property
    def code(self) -> None:
        """Metaflow's code package of the task: rayflow makes none, so None (as Metaflow's
        for a task run locally)."""
        return None

    @property
    def environment_info(self) -> dict[str, Any] | None:
        """Metaflow's environment of the task, known only with a code package: None."""
        return None

    @property
    def exception(self) -> TaskException | None:
        return TaskException.from_record(self._record.exception)

    @property
    def stdout(self) -> str:
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        return self._log("stderr")

    @property
    def stdout_size(self) -> int:
        return len(self.stdout.encode())

    @property
    def stderr_size(self) -> int:
        return len(self.stderr.encode())

    def loglines(self, stream: str, as_unicode: bool = True):
        """(datetime, line) for every line the task wrote to `stream`, in order; the time is
        when the line was written (Metaflow's Task.loglines)."""
        for stamp, line in decode_timed_log(self._raw_log(stream)):
            yield stamp, line if as_unicode else line.encode()

    def _log(self, stream: str) -> str:
        """The task's log. A task cloned by resume did not run here: its log is the origin's."""
        return "".join(line + "\n" for _, line in decode_timed_log(self._raw_log(stream)))

    def _raw_log(self, stream: str) -> str:
        run_id, step, task_id = self._run_id, self._step.id, self.id
        origin = self._record.origin_pathspec
        if origin:
            _, run_id, step, task_id = origin.split("/")[-4:]
        try:
            return self._store.load_log(run_id, step, task_id, self._record.attempt, stream)
        except FileNotFoundError:  # a task that printed nothing may have no log file
            return ""

    # -- place in the run -------------------------------------------------------------------
    @property
    def foreach_stack(self) -> list[tuple[str, int, int]]:
        return [tuple(frame) for frame in self._record.foreach_stack]  # type: ignore[misc]

    @property
    def index(self) -> int | None:
        """Index of this task in its innermost foreach; None outside a foreach."""
        stack = self._record.foreach_stack
        return int(stack[-1][1]) if stack else None

    @property
    def origin_pathspec(self) -> str | None:
        """The task this one was cloned from by resume; None if it really ran."""
        return self._record.origin_pathspec

    @property
    def parent_task_pathspecs(self) -> Iterator[str]:
        """Yields the pathspecs of the tasks this one ran after (a generator, as Metaflow's)."""
        yield from self._record.parents

    def _child_step_names(self) -> list[str]:
        return list((self._record.transition or {}).get("steps") or [])

    @property
    def child_task_pathspecs(self) -> Iterator[str]:
        """Yields the tasks that ran next because of this one (those naming it as a parent)."""
        run = self._step._run
        for name in self._child_step_names():
            step = run._child(name)
            if step is None:
                continue
            for task in step:
                if self.pathspec in task._record.parents:
                    yield task.pathspec

    @property
    def child_tasks(self) -> Iterator[Task]:
        for pathspec in self.child_task_pathspecs:
            yield self._sibling_task(pathspec)

    @property
    def parent_tasks(self) -> Iterator[Task]:
        for pathspec in self._record.parents:
            yield self._sibling_task(pathspec)

    def _sibling_task(self, pathspec: str) -> Task:
        """A task of the same run, reached through our Run so nothing above it is re-read."""
        flow_name, run_id, step_name, task_id = split_pathspec(Task, pathspec)
        run = self._step._run
        if [flow_name, run_id] != run._components:
            return Task(pathspec, datastore=self._url, _namespace_check=False)
        step = run._child(step_name)
        task = step._child(task_id) if step is not None else None
        if task is None:
            raise ObjectNotFound(
                f"{self!r} names parent task '{pathspec}', which is not in datastore "
                f"{self.datastore}. The run's records are incomplete; resume the run to redo it."
            )
        return task

    # -- record fields ----------------------------------------------------------------------
    @property
    def current_attempt(self) -> int:
        return self._record.attempt

    @property
    def created_at(self) -> datetime | None:
        return to_datetime(self._record.started_at)

    @property
    def finished_at(self) -> datetime | None:
        return to_datetime(self._record.finished_at)

    @property
    def metadata_dict(self) -> dict[str, Any]:
        """What is known about the task, by name. Metaflow's names come as Metaflow writes them
        (strings): "attempt", "user", "runtime", "python_version", and in a resumed run
        "origin-run-id" (every task) and "origin-task-id" (a task cloned from the origin)."""
        rec = self._record
        out: dict[str, Any] = {
            "node": rec.node, "user": rec.user, "attempt": str(rec.attempt),
            "code_hash": rec.code_hash, "status": rec.status,
            "started_at": rec.started_at, "finished_at": rec.finished_at,
            "foreach_num_splits": rec.foreach_num_splits, "runtime": "rayflow",
        }
        if rec.python_version:
            out["python_version"] = rec.python_version
        out.update(rec.metadata or {})
        origin_run = self._step._run._record.origin_run_id
        if origin_run:
            out["origin-run-id"] = origin_run
        if rec.origin_pathspec:
            out["origin-task-id"] = rec.origin_pathspec.split("/")[-1]
        return out

    @property
    def metadata(self) -> list[Metadata]:
        """Metaflow's list of metadata entries: one per name of `metadata_dict`, and one
        "attempt" entry for each attempt the task made."""
        rec = self._record
        when = to_datetime(rec.started_at)
        out = [Metadata(name, value, when, "attempt" if name == "attempt" else name, self)
               for name, value in self.metadata_dict.items() if name != "attempt"]
        out += [Metadata("attempt", str(i), when, "attempt", self)
                for i in range(int(rec.attempt) + 1)]
        return out

    @property
    def lineage(self) -> dict[str, Any]:
        """What produced this task: code, parameters, parents and the exact inputs it read."""
        rec = self._record
        return {
            "code_hash": rec.code_hash, "params": dict(rec.params),
            "parents": list(rec.parents), "inputs": dict(rec.inputs),
            "user": rec.user, "node": rec.node, "attempt": rec.attempt,
            "started_at": rec.started_at, "finished_at": rec.finished_at,
            **({"environment": rec.environment} if rec.environment else {}),
        }


class DataArtifact(MetaflowObject):
    """One artifact of a task; `.data` loads (once) its value, the rest reads the record only."""

    _NAME = "artifact"
    _PATH_PARTS = ("FlowName", "RunID", "StepName", "TaskID", "ArtifactName")
    _EXAMPLE = "HelloFlow/<run_id>/start/1/x"

    def __init__(self, pathspec: str, *, attempt: int | None = None,
                 datastore: str | None = None, _namespace_check: bool = True):
        *task_parts, name = split_pathspec(DataArtifact, pathspec)
        task = Task("/".join(task_parts), attempt=attempt, datastore=datastore,
                    _namespace_check=_namespace_check)
        info = task._record.artifacts.get(name)
        if info is None:
            raise task._missing_child(name)
        self._setup(task, name, info)

    @classmethod
    def _from_task(cls, task: Task, name: str, info: ArtifactInfo) -> DataArtifact:
        artifact = cls.__new__(cls)
        artifact._setup(task, name, info)
        return artifact

    def _setup(self, task: Task, name: str, info: ArtifactInfo) -> None:
        self._task = task
        self._url = task._url
        self._components = [*task._components, name]
        self._info = info
        self._value: Any = _NOT_LOADED

    @property
    def parent(self) -> Task:
        return self._task

    def _child_ids(self) -> list[str]:
        return []  # an artifact is a leaf

    def _child(self, child_id: str) -> None:
        return None

    @property
    def data(self) -> Any:
        if self._value is _NOT_LOADED:
            self._value = self._store.load_artifact(
                self._info, f"{self.id} of task {self._task.pathspec}")
        return self._value

    @property
    def sha(self) -> str:
        """The content hash of the stored value: equal values share it, as with Metaflow's.
        Its algorithm differs: xxh3-128 (32 hex characters), where Metaflow's is a SHA-1 of
        its pickled bytes (40). Compare shas between rayflow runs, not with Metaflow's."""
        return self._info.sha

    @property
    def size(self) -> int:
        return self._info.size

    @property
    def type(self) -> str:
        return self._info.type

    @property
    def encoding(self) -> str:
        return self._info.encoding

    @property
    def created_at(self) -> datetime | None:
        return self._task.finished_at  # artifacts are persisted as the task finishes

    finished_at = created_at
