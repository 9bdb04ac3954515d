"""Flow, Run and Step: Metaflow's client objects, read from a rayflow datastore (Task and
DataArtifact live in task.py).

Every object is named by a pathspec (`HelloFlow/1712/start/3/x`) and reads only the datastore,
through `FlowDataStore`, so a notebook can inspect runs with no Ray running. Objects are cheap
views: a parent hands its children what it already read, and artifact bytes load only when
`.data` is touched.

What the datastore guarantees, and so what "finished" means here: a task's record is written when
an attempt ends, and `DONE` is written after it only when the attempt succeeded. A reader trusts a
task as successful only with `DONE`. This module must never import ray.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from rayflow.client.artifacts import MetaflowData
from rayflow.client.base import (
    MetaflowObject,
    ObjectNotFound,
    resolve_url,
    split_pathspec,
    to_datetime,
)
from rayflow.client.namespaces import get_namespace, in_namespace
from rayflow.client.task import Task
from rayflow.datastore import RunRecord, TaskRecord
from rayflow.datastore.records import DamagedRecordError, gc_paused, natural_key
from rayflow.exceptions import MetaflowNamespaceMismatch, MetaflowTaggingError

END_STEP = "end"
MAX_TAG_BYTES = 500
# The hidden step whose one task keeps the run's parameters, `_graph_info`, and the names of
# its start and end steps (rayflow.runtime.parameters_task writes it).
PARAMETERS_STEP = "_parameters"


def check_tag(tag, doing: str = "use tag", where: str = "") -> None:
    """A tag is a non-empty string of at most MAX_TAG_BYTES bytes (UTF-8), as in Metaflow;
    anything else is a MetaflowTaggingError (one message, never a traceback)."""
    if not isinstance(tag, str) or not tag.strip():
        raise MetaflowTaggingError(
            f"Cannot {doing} {tag!r}{where}: a tag is a non-empty string such as 'baseline' "
            f"or 'team:search'.")
    size = len(tag.encode("utf-8", "surrogateescape"))
    if size > MAX_TAG_BYTES:
        raise MetaflowTaggingError(
            f"Cannot {doing} {tag[:30]!r}... ({size} bytes){where}: a tag is at most "
            f"{MAX_TAG_BYTES} bytes (UTF-8), as in Metaflow.")


def _as_list(tag) -> list:
    return list(tag) if isinstance(tag, (list, tuple)) else [tag]


def running_task(flow: str, run_id: str, step: str, task_id: str | None = None):
    """The record of the task running in this very process, if it is the one named (a step
    that looks itself up, `Task(current.pathspec)`, before its record is written): status
    "running", and nothing of its own yet."""
    from rayflow.current import current

    if not current.is_running_flow or (current.flow_name, current.run_id, current.step_name) \
            != (flow, run_id, step) or (task_id is not None and task_id != current.task_id):
        return None
    return TaskRecord(flow=flow, run_id=run_id, step=step, task_id=current.task_id,
                      attempt=current.retry_count, status="running",
                      user=current.username or "")


# Steps of finished runs already read (their records cannot change), newest use last.
_FINISHED_STEPS: OrderedDict = OrderedDict()
_FINISHED_STEPS_KEPT = 8


class Flow(MetaflowObject):
    """All runs of one flow in a datastore; iterates the current namespace's runs, newest first."""

    _NAME = "flow"
    _PATH_PARTS = ("FlowName",)
    _EXAMPLE = "HelloFlow"
    _CHILD_KIND = "run"

    def __init__(self, pathspec: str, *, datastore: str | None = None,
                 _namespace_check: bool = True):
        self._components = split_pathspec(Flow, pathspec)
        self._url = resolve_url(datastore)
        if not self._store.list_run_ids():
            raise ObjectNotFound(
                f"Flow '{self.id}' not found in datastore {self.datastore}: it has no runs there. "
                f"If it ran with another datastore, point the client at that one with "
                f"metadata('/path/to/.rayflow') or metadata('s3://bucket/prefix') (the value "
                f"given to the CLI's --datastore), or set RAYFLOW_DATASTORE."
            )
        namespace = get_namespace()
        if _namespace_check and namespace is not None and next(self._children(), None) is None:
            # As in Metaflow: a flow is in a namespace through its runs.
            raise MetaflowNamespaceMismatch(
                f"Flow '{self.id}' has no run in the current namespace '{namespace}' (datastore "
                f"{self.datastore}). Call namespace(None) to read runs by every user, or "
                f"namespace('user:<name>') to read one user's runs.")

    @property
    def parent(self) -> None:
        return None

    @property
    def tags(self) -> frozenset[str]:
        return frozenset()  # a flow carries no tags; its runs do

    user_tags = system_tags = tags

    def is_in_namespace(self) -> bool:
        """A flow is in a namespace when one of its runs is (Metaflow's rule)."""
        return next(self._children(), None) is not None

    # -- runs -------------------------------------------------------------------------------
    def _child_ids(self) -> list[str]:
        return self._store.list_run_ids()  # newest first, by contract

    def _run(self, run_id: str, namespace_check: bool) -> Run | None:
        record = self._store.read_run(run_id)
        return None if record is None else Run._from_flow(self, run_id, record, namespace_check)

    def _child(self, run_id: str) -> Run | None:
        # `flow[run_id]` checks the namespace, as Metaflow does: a run id is no password.
        return self._run(run_id, namespace_check=True)

    def __contains__(self, run_id: object) -> bool:
        return isinstance(run_id, str) and self._store.read_run(run_id) is not None

    def _children(self) -> Iterator[Run]:
        namespace = get_namespace()
        for run_id in self._child_ids():
            run = self._run(run_id, namespace_check=False)
            if run is not None and in_namespace(run.tags, namespace):
                yield run

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs in the current namespace that carry every one of `tags`, newest first."""
        wanted = frozenset(tags)
        return (run for run in self._children() if wanted <= run.tags)

    @property
    def latest_run(self) -> Run | None:
        return next(iter(self), None)

    @property
    def latest_successful_run(self) -> Run | None:
        return next((run for run in self if run.successful), None)


class Run(MetaflowObject):
    """One execution of a flow: its steps, its tags, and the `end` task's data as `.data`."""

    _NAME = "run"
    _PATH_PARTS = ("FlowName", "RunID")
    _EXAMPLE = "HelloFlow/<run_id>"
    _CHILD_KIND = "step"

    def __init__(self, pathspec: str, *, datastore: str | None = None,
                 _namespace_check: bool = True):
        flow_name, run_id = split_pathspec(Run, pathspec)
        flow = Flow(flow_name, datastore=datastore, _namespace_check=False)
        record = flow._store.read_run(run_id)
        if record is None:
            raise flow._missing_child(run_id)
        self._setup(flow, run_id, record, _namespace_check)

    @classmethod
    def _from_flow(cls, flow: Flow, run_id: str, record: RunRecord, namespace_check: bool) -> Run:
        run = cls.__new__(cls)
        run._setup(flow, run_id, record, namespace_check)
        return run

    def _setup(self, flow: Flow, run_id: str, record: RunRecord, namespace_check: bool) -> None:
        self._flow = flow
        self._url = flow._url
        self._components = [flow.id, run_id]
        self._record = record
        self._finished_end_task: Task | None = None
        self._user_tags = list(self._store.read_tags(run_id))
        if namespace_check:
            self._check_namespace()

    def _check_namespace(self) -> None:
        namespace = get_namespace()
        if not in_namespace(self.tags, namespace):
            raise MetaflowNamespaceMismatch(
                f"{self!r} is not in the current namespace '{namespace}' (its tags: "
                f"{', '.join(sorted(self.tags))}). Call namespace(None) to read runs by every "
                f"user, or namespace('user:{self._record.user}') to read this user's runs."
            )

    @property
    def parent(self) -> Flow:
        return self._flow

    # -- tags -------------------------------------------------------------------------------
    @property
    def user_tags(self) -> frozenset[str]:
        return frozenset(self._user_tags)

    @property
    def system_tags(self) -> frozenset[str]:
        # `user:<name>` is what namespaces hinge on, so it is always there even if a writer
        # forgot it.
        user = self._record.user
        return frozenset(self._record.sys_tags) | ({f"user:{user}"} if user else set())

    @property
    def tags(self) -> frozenset[str]:
        return self.user_tags | self.system_tags

    # The singular forms also take a list, as Metaflow's still do (deprecated there).
    def add_tag(self, tag: str) -> None:
        self.replace_tags([], _as_list(tag))

    def add_tags(self, tags: Iterable[str]) -> None:
        self.replace_tags([], tags)

    def remove_tag(self, tag: str) -> None:
        self.replace_tags(_as_list(tag), [])

    def remove_tags(self, tags: Iterable[str]) -> None:
        self.replace_tags(tags, [])

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        self.replace_tags(_as_list(tag_to_remove), _as_list(tag_to_add))

    def replace_tags(self, tags_to_remove: Iterable[str], tags_to_add: Iterable[str]) -> None:
        """Remove, then add, user tags in one write; system tags cannot be removed."""
        remove = self._checked_tags(tags_to_remove, "remove")
        add = self._checked_tags(tags_to_add, "add")
        if not remove and not add:
            raise ValueError(f"replace_tags() on {self!r} got no tag to remove and none to "
                             f"add; name at least one.")
        system = sorted(set(remove) & self.system_tags)
        if system:
            raise ValueError(
                f"Cannot remove system tag(s) {', '.join(system)} from {self!r}: rayflow sets "
                f"them when the run starts and namespaces rely on them. Only user tags "
                f"({', '.join(sorted(self.user_tags)) or 'none yet'}) can be removed."
            )
        # Read again rather than trust our copy: another process may have tagged the run since.
        # A system tag is on the run already: adding it as a user tag changes nothing.
        current = [t for t in self._store.read_tags(self.id) if t not in remove]
        updated = current + [t for t in dict.fromkeys(add)
                             if t not in current and t not in self.system_tags]
        self._store.write_tags(self.id, updated)
        self._user_tags = updated

    def _checked_tags(self, tags: Iterable[str], verb: str) -> list[str]:
        if isinstance(tags, str):
            raise TypeError(
                f"{verb}_tags() on {self!r} takes a list of tags, not the string {tags!r} "
                f"(which would be read letter by letter); use {verb}_tag({tags!r})."
            )
        tags = list(tags)
        for tag in tags:
            check_tag(tag, f"{verb} tag", f" on {self!r}")
        return tags

    # -- steps ------------------------------------------------------------------------------
    def _child_ids(self) -> list[str]:
        """Newest first, as Metaflow iterates a run: by when each step's first task started
        (a step none of whose tasks has a record yet is the newest)."""
        return sorted(self._store.list_steps(self.id), key=self._step_start_key, reverse=True)

    def _step_start_key(self, step_name: str) -> tuple:
        """Order steps by when their first task started; steps not started yet go last."""
        task_ids = sorted(self._store.list_tasks(self.id, step_name), key=natural_key)
        try:
            record = self._store.read_task(self.id, step_name, task_ids[0]) if task_ids \
                else None
        except DamagedRecordError:  # listing the step names it; ordering needs no more
            record = None
        if record is None:
            return (1, 0.0, step_name)
        return (0, record.started_at or 0.0, step_name)

    def _child(self, step_name: str) -> Step | None:
        # Steps whose names start with "_" (the run's `_parameters`) are not listed among its
        # steps, as in Metaflow, but can be named.
        if step_name.startswith("_"):
            return Step._from_run(self, step_name) \
                if self._store.list_tasks(self.id, step_name) else None
        if step_name not in self._store.list_steps(self.id) and \
                running_task(self._flow.id, self.id, step_name) is None:
            return None
        return Step._from_run(self, step_name)

    @property
    def _graph_endpoints(self) -> tuple[str, str]:
        """(start step, end step) of the run, as its `_parameters` task names them; a run
        without one (written before rayflow kept it) had `start` and `end`."""
        cached = self.__dict__.get("_endpoints")
        if cached is None:
            step = self._child(PARAMETERS_STEP)
            task = step.task if step is not None else None
            meta = (task._record.metadata or {}) if task is not None else {}
            cached = (meta.get("start_step") or "start", meta.get("end_step") or END_STEP)
            # A run just started may not have written it yet; an ended run without one was
            # written before rayflow kept it.
            if task is not None or self._record.status in ("success", "failed"):
                self._endpoints = cached
        return cached

    def steps(self, *tags: str) -> Iterator[Step]:
        """Steps newest first; tags live on the run, so this yields all of them or none."""
        return iter(self) if frozenset(tags) <= self.tags else iter(())

    @property
    def end_task(self) -> Task | None:
        # A DONE end task never changes, so keep it: `run.data.x` then loads `x` only once.
        if self._finished_end_task is not None:
            return self._finished_end_task
        end = self._child(self._graph_endpoints[1])
        task = None if end is None else end.task
        if task is not None and task._is_done():
            self._finished_end_task = task
        return task

    @property
    def data(self) -> MetaflowData | None:
        """The end task's artifacts; None until the run has reached its end step."""
        end_task = self.end_task
        return None if end_task is None else end_task.data

    @property
    def successful(self) -> bool:
        end_task = self.end_task
        return end_task is not None and end_task.successful

    @property
    def finished(self) -> bool:
        """True once the `end` task has its DONE marker (a run that failed earlier never does)."""
        end_task = self.end_task
        return end_task is not None and end_task._is_done()

    @property
    def finished_at(self) -> datetime | None:
        """When the `end` task finished (as in Metaflow), never before the run started: a
        resume that cloned `end` keeps the origin's time in that task, and then the run's
        own record (when it has its end) says when this run ended."""
        end_task = self.end_task
        if end_task is None or not end_task._is_done():
            return None
        rec, ended = self._record, end_task._record.finished_at
        if end_task._record.origin_pathspec and rec.finished_at:
            ended = rec.finished_at
        return to_datetime(max(float(ended or 0.0), float(rec.started_at or 0.0)))

    @property
    def created_at(self) -> datetime | None:
        return to_datetime(self._record.started_at)

    @property
    def status(self) -> str:
        """"running", "success", "failed", or "interrupted" (its driver died without recording
        an end: resume it). A finished `end` wins over a stale run record."""
        return "success" if self.successful else self._store.run_status(self._record)

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self._record.params)

    @property
    def user(self) -> str:
        return self._record.user

    @property
    def code_hash(self) -> str:
        return self._record.code_hash

    @property
    def trigger(self):
        """The rayflow.events.Trigger of the events that started this run (Metaflow's
        Run.trigger); None for a run started by hand, as every rayflow run is today."""
        return None

    @property
    def origin_pathspec(self) -> str | None:
        """The run this one resumed, as a pathspec; None for a fresh run."""
        origin = self._record.origin_run_id
        return f"{self._flow.id}/{origin}" if origin else None

    @property
    def code(self) -> None:
        """Metaflow's code package of a run with remote steps. rayflow makes none (a cluster
        gets the flow's folder through Ray's runtime_env), so None, as Metaflow's for a run
        whose steps all ran locally."""
        return None


class Step(MetaflowObject):
    """One step of a run: a single task, or one per foreach split."""

    _NAME = "step"
    _PATH_PARTS = ("FlowName", "RunID", "StepName")
    _EXAMPLE = "HelloFlow/<run_id>/start"
    _CHILD_KIND = "task"

    def __init__(self, pathspec: str, *, datastore: str | None = None,
                 _namespace_check: bool = True):
        flow_name, run_id, step_name = split_pathspec(Step, pathspec)
        run = Run(f"{flow_name}/{run_id}", datastore=datastore, _namespace_check=_namespace_check)
        if run._child(step_name) is None:
            raise run._missing_child(step_name)
        self._setup(run, step_name)

    @classmethod
    def _from_run(cls, run: Run, step_name: str) -> Step:
        step = cls.__new__(cls)
        step._setup(run, step_name)
        return step

    def _setup(self, run: Run, step_name: str) -> None:
        self._run = run
        self._url = run._url
        self._components = [*run._components, step_name]

    @property
    def parent(self) -> Run:
        return self._run

    def _read_task(self, task_id: str, attempt: int | None = None) -> TaskRecord | None:
        record = self._store.read_task(self._run.id, self.id, task_id, attempt=attempt)
        if record is None:
            record = running_task(self._run._flow.id, self._run.id, self.id, task_id)
        return record

    def _index(self) -> dict:
        """task id -> (record, DONE) of every task of the step, read in one pass (see
        FlowDataStore.step_records). A finished run's steps cannot change: they are kept for
        the next Step object that asks."""
        index = self.__dict__.get("_task_index")
        if index is None:
            key = (self._url, self._run._flow.id, self._run.id, self.id)
            index = _FINISHED_STEPS.get(key)
            if index is None:
                index = self._store.step_records(self._run.id, self.id)
                if self._run._record.status in ("success", "failed"):
                    _FINISHED_STEPS[key] = index
                    while len(_FINISHED_STEPS) > _FINISHED_STEPS_KEPT:
                        _FINISHED_STEPS.popitem(last=False)
            else:
                _FINISHED_STEPS.move_to_end(key)
            self._task_index = index
        return index

    def _child_ids(self) -> list[str]:
        """Newest first, as Metaflow iterates a step (task ids grow as tasks are made)."""
        ids = list(self._index())
        me = running_task(self._run._flow.id, self._run.id, self.id)
        if me is not None and me.task_id not in ids:
            ids = [*ids, me.task_id]
        if all(i.isdigit() for i in ids):  # run-wide numeric ids: by value, quickly
            return sorted(ids, key=int, reverse=True)
        return sorted(ids, key=natural_key, reverse=True)

    def _children(self) -> Iterator[Task]:
        index = self._index()
        ids = self._child_ids()
        if len(ids) > 1000:  # build them all at once, without collector passes
            with gc_paused():
                tasks = list(self._tasks_of(index, ids))
            yield from tasks
            return
        yield from self._tasks_of(index, ids)

    def _tasks_of(self, index: dict, ids: list[str]) -> Iterator[Task]:
        for task_id in ids:
            entry = index.get(task_id)
            if entry is None:
                child = self._child(task_id)
                if child is not None:
                    yield child
                continue
            record, done = entry
            task = Task._from_step(self, task_id, record, attempt=None)
            task._done = done
            yield task

    def _child(self, task_id: str) -> Task | None:
        index = self.__dict__.get("_task_index")
        if index is not None and task_id in index:
            record, done = index[task_id]
            task = Task._from_step(self, task_id, record, attempt=None)
            task._done = done
            return task
        record = self._read_task(task_id)
        return None if record is None else Task._from_step(self, task_id, record, attempt=None)

    @property
    def task(self) -> Task | None:
        """The newest task, as in Metaflow: *the* task of a step that is not a foreach
        split."""
        return next(iter(self), None)

    @property
    def origin_pathspec(self) -> str | None:
        """The step this one was resumed from (in the origin run); None for a fresh run."""
        origin = self._run._record.origin_run_id
        return f"{self._run._flow.id}/{origin}/{self.id}" if origin else None

    @property
    def child_steps(self) -> Iterator[Step]:
        """Yields the steps the tasks of this step went on to, as they ran."""
        names: dict[str, None] = {}
        for task in self:
            names.update(dict.fromkeys(task._child_step_names()))
        return (s for s in (self._run._child(n) for n in names) if s is not None)

    @property
    def parent_steps(self) -> Iterator[Step]:
        """Yields the steps whose tasks led to this one's."""
        names: dict[str, None] = {}
        for task in self:
            names.update(dict.fromkeys(p.split("/")[2] for p in task._record.parents))
        return (s for s in (self._run._child(n) for n in names) if s is not None)

    def tasks(self, *tags: str) -> Iterator[Task]:
        return iter(self) if frozenset(tags) <= self.tags else iter(())

    def control_tasks(self, *tags: str) -> Iterator[Task]:
        """Metaflow's control tasks of a @parallel step (its node 0, whose metadata says
        internal_task_type=control_task), with all of `tags`; none for another step."""
        for task in self.tasks(*tags):
            if task.metadata_dict.get("internal_task_type") == "control_task":
                yield task

    @property
    def control_task(self) -> Task | None:
        return next(self.control_tasks(), None)

    @property
    def environment_info(self) -> dict[str, Any] | None:
        """As Metaflow's: the first task's (None: rayflow keeps no code package)."""
        task = self.task
        return task.environment_info if task is not None else None

    @property
    def created_at(self) -> datetime | None:
        starts = [task._record.started_at for task in self]
        return to_datetime(min(starts)) if starts else None

    @property
    def finished_at(self) -> datetime | None:
        """When the last task finished; None while any task is unfinished (as in Metaflow)."""
        tasks = list(self)
        if not tasks or not all(task._ended() for task in tasks):
            return None
        return max(task.finished_at for task in tasks)


class Metaflow:
    """Every flow of the datastore, as Metaflow's entry point: `Metaflow().flows`,
    `for flow in Metaflow()`, `Metaflow()["HelloFlow"]`. Only flows with a run in the current
    namespace are listed. `_current_metadata` names a datastore as `metadata()` takes it."""

    def __init__(self, _current_metadata: str | None = None):
        self._url = resolve_url(_current_metadata)

    @property
    def flows(self) -> list[Flow]:
        return list(self)

    def __iter__(self) -> Iterator[Flow]:
        from rayflow.datastore import get_storage

        for name in get_storage(self._url).list(""):
            # Flow folders are named after their classes; "_spin" and the like are not flows.
            if not name.isidentifier() or name.startswith("_"):
                continue
            try:
                yield Flow(name, datastore=self._url)
            except (ObjectNotFound, MetaflowNamespaceMismatch):
                continue

    def __getitem__(self, name: str) -> Flow:
        return Flow(name, datastore=self._url)

    def __str__(self) -> str:
        return "Metaflow()"

    __repr__ = __str__
