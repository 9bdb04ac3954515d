"""`current`: what a running step knows about itself (Metaflow's `current` object).

The worker sets the context before calling the user's step and clears it afterwards. Outside a
running task, `current.is_running_flow` is False and the other fields are None.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field


@dataclass
class TaskContext:
    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    retry_count: int = 0
    origin_run_id: str | None = None
    username: str | None = None
    namespace: str | None = None
    parameter_names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    # The run's datastore: what the client reads inside a step unless told otherwise.
    datastore_url: str | None = None
    # @project's values (project_name, branch_name, ...); None for a flow without @project,
    # whose `current` then has no such attributes, as in Metaflow.
    project: dict | None = None
    # `current.card`: the step's CardComponentCollector; a step without @card has none, and
    # `current` then has no `card` attribute, as in Metaflow (flows probe it with hasattr).
    card: object = None
    # `current.actor`: the pool actor serving the task (runtime.actor.ActorInfo), in an
    # @actor_pool step; None elsewhere.
    actor: object = None
    # `current.graph`: the flow's graph and class (graph.raw.graph_info makes the dict).
    graph: object = None
    flow_cls: object = None
    # `current.trigger`: the rayflow.events.Trigger of the events that started the run; None
    # for a run started by hand (rayflow runs start no other way yet).
    trigger: object = None
    # `current.parallel` (rayflow.parallel.Parallel) and `current.is_parallel`: set for the
    # members of a @parallel step's gang.
    parallel: object = None
    is_parallel: bool = False

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"


PROJECT_FIELDS = ("project_name", "branch_name", "project_flow_name", "is_production",
                  "is_user_branch")


class Current:
    """A read-only view of the current task's context."""

    def __init__(self):
        self._ctx: TaskContext | None = None
        # Outside a task, while a run is being prepared (its parameters' default functions
        # run): the flow's name and @project values.
        self._flow: dict | None = None

    @contextlib.contextmanager
    def _flow_env(self, flow_name: str, project: dict | None):
        saved = self.__dict__.get("_flow")
        self.__dict__["_flow"] = {"flow_name": flow_name, "project": project}
        try:
            yield
        finally:
            self.__dict__["_flow"] = saved

    def _set(self, ctx: TaskContext | None) -> None:
        self._ctx = ctx

    @property
    def is_running_flow(self) -> bool:
        return self._ctx is not None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        ctx = self.__dict__.get("_ctx")
        flow = self.__dict__.get("_flow")
        if ctx is None and flow is not None:
            if name == "flow_name":
                return flow["flow_name"]
            if name in PROJECT_FIELDS and flow["project"] is not None:
                return flow["project"][name]
        if name == "card" and (ctx is None or ctx.card is None):
            where = f"step {ctx.step_name!r} has no @card" if ctx else "no step is running"
            raise AttributeError(f"current has no attribute 'card': {where}. Put @card above "
                                 "@step to give the step a card.")
        if name == "tempdir":  # Metaflow's TEMPDIR setting, "." unless configured
            import os

            return os.environ.get("METAFLOW_TEMPDIR") or "."
        if name == "graph":
            if ctx is None or ctx.graph is None:
                raise RuntimeError("Graph is not available: current.graph exists in a "
                                   "running step.")
            from .graph.raw import graph_info

            return graph_info(ctx.graph, ctx.flow_cls)
        if ctx is None:
            if name in TaskContext.__dataclass_fields__ or \
                    name in ("pathspec", "task", "run", "actor", *PROJECT_FIELDS):
                return None
            raise AttributeError(f"current has no attribute {name!r}")
        if name == "card":
            return ctx.card
        if name == "parallel" and ctx.parallel is None:  # Metaflow's values outside a gang
            from .parallel import Parallel

            return Parallel("127.0.0.1", 1, 0, None)
        if name == "tags":  # a set, as in Metaflow (a fresh one: changing it changes nothing)
            return set(ctx.tags)
        if name in ("task", "run"):
            # The running task and its run, as client objects (Metaflow's current.task and
            # current.run): they pickle, so a step may keep them as artifacts.
            from .client import Run, Task

            if name == "task":
                return Task(ctx.pathspec, datastore=ctx.datastore_url, _namespace_check=False)
            return Run(f"{ctx.flow_name}/{ctx.run_id}", datastore=ctx.datastore_url,
                       _namespace_check=False)
        if name in PROJECT_FIELDS:
            if ctx.project is None:
                raise AttributeError(f"current has no attribute {name!r}: the flow has no "
                                     "@project decorator")
            return ctx.project[name]
        try:
            return getattr(ctx, name)
        except AttributeError:
            raise AttributeError(f"current has no attribute {name!r}") from None

    def get(self, name, default=None):
        return getattr(self, name, default)

    def __repr__(self) -> str:
        return f"current({self._ctx.pathspec if self._ctx else 'not running'})"


current = Current()
