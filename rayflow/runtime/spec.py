"""The small messages that cross between the driver and the workers.

The driver sends a `RunContext` once per run (through the object store) and a list of
`TaskSpec`s per Ray task; a worker sends back one `TaskOutcome` per task. None of them carries
artifact bytes: artifacts travel as `ArtifactLoc`s, whose payloads Ray moves on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .artifacts import ArtifactLoc
from .errors import TaskError
from .wire import by_position


@dataclass
class RunContext:
    flow_file: str
    module_name: str
    class_name: str
    flow_name: str
    run_id: str
    datastore_url: str
    params: dict[str, Any]
    param_locs: dict[str, ArtifactLoc]
    code_hashes: dict[str, str]
    user: str
    tags: list[str] = field(default_factory=list)
    origin_run_id: str | None = None
    # `--with` decorators, as the user wrote them (e.g. "retry:times=2"); each worker parses
    # them once.
    with_decorators: tuple[str, ...] = ()
    namespace: str | None = None
    source_dir: str = ""  # the flow's folder on the driver, for tracebacks read elsewhere
    # The driver's datastore settings (AWS endpoint, region, credentials), so every worker
    # reaches the same datastore the driver checked, even one started before they were set.
    datastore_env: dict[str, str] = field(default_factory=dict)
    project: dict | None = None         # ProjectInfo.to_json() of a @project flow
    configs_key: str = ""               # the run's config values, as canonical JSON
    sys_tags: list[str] = field(default_factory=list)   # the run's system tags beyond user:
    # On a warm local Ray (`rayflow up`) the workers were not started from the `rayflow run`
    # that uses them: they take its working directory here (its environment variables come
    # through Ray's runtime_env), so a step sees what it would with an embedded Ray.
    driver_cwd: str | None = None
    # ... and the variables the warm Ray's workers were started with that the run's own
    # environment lacks: removed while its tasks run.
    env_unset: tuple[str, ...] = ()
    max_log_bytes: int | None = None    # run --max-log-size: what a task's log keeps
    # @secrets: step -> (SecretSpec, values read on the driver or None) per source. Secret
    # values: this context lives in memory (Ray's object store) and is never written down.
    secrets: dict | None = field(default=None, repr=False)
    # @pypi/@conda: step -> its environment's lineage (runtime/environments.py)
    environments: dict[str, dict] = field(default_factory=dict)


@by_position
@dataclass(slots=True)
class ItemLoc:
    """Where a foreach split's own item is: element `offset` of the chunk behind `ref`; it is
    item `index` of the foreach variable `var`, whose hash is `sha` (for lineage)."""

    ref: Any
    offset: int
    var: str = ""
    sha: str = ""
    index: int = 0


@by_position
@dataclass(slots=True)
class TaskSpec:
    step: str
    task_id: str
    attempt: int
    foreach_stack: tuple
    view: dict[str, ArtifactLoc] = field(default_factory=dict)
    item: ItemLoc | None = None
    # A join's inputs, as columns (runtime/joins.py); its parents' pathspecs come from them.
    join: Any = None
    parents: tuple[str, ...] = ()
    # @catch's fallback attempt: the step's process died on every attempt, so its code is not
    # run again; the task records the failure in @catch's variable and takes its transition.
    fallback: bool = False
    # Set in the worker when an earlier run of this attempt was ended by the @timeout watchdog.
    timed_out: bool = False
    iteration: int = 0  # a recursive switch's run of the step (its record keeps it)
    # Tasks this one started before they were durable (task id -> step): the task writes its
    # own record only once theirs are written, and takes from them the hashes of the
    # artifacts it was handed before they had one (PENDING_SHA).
    awaits: dict[str, str] | None = None
    # A member of a @parallel step's gang (runtime/gang.py `member_info`): its node index, the
    # gang's size, the control task and the environment torchrun would set.
    gang: dict | None = None

    @property
    def is_join(self) -> bool:
        return self.join is not None

    def parent_pathspecs(self, flow: str, run_id: str) -> list[str]:
        if self.parents or self.join is None:
            return list(self.parents)
        return self.join.pathspecs(flow, run_id)


@by_position
@dataclass(slots=True)
class TaskOutcome:
    step: str
    task_id: str
    attempt: int
    ok: bool
    new: dict[str, ArtifactLoc] = field(default_factory=dict)  # ref/key filled by the driver
    removed: tuple[str, ...] = ()  # inherited artifacts the step deleted
    next_steps: tuple[str, ...] = ()
    foreach: str | None = None
    num_splits: int | None = None
    # Per-split resources, when the foreach target's @resources is a function of the item:
    # the distinct Ray option dicts, and one index into them per split.
    split_shapes: tuple | None = None
    error: TaskError | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    node: str = ""
    worker: int = 0        # the worker process's pid: the run report's timeline lanes
    peak_rss: int = 0      # that process's peak resident memory (bytes) when the task ended
    printed: int = 0       # lines the task wrote to the console (Ray forwards them to the driver)
    # A merge in a join can point at artifacts of its inputs; those keep their own location.
    adopted: dict[str, ArtifactLoc] = field(default_factory=dict)
    caught: bool = False   # the step failed and @catch caught it: finished, not successful
    # What the task printed, held for the driver to show in order (console.py): (0 stdout or
    # 1 stderr, text) pieces as written; None when it printed nothing or went live.
    console: tuple | None = None
