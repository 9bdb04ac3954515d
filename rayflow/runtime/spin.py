"""`rayflow spin`: run one past task again, in this process, from the inputs it had, without
touching its run (Metaflow's `spin`). A step with @pypi/@conda runs in its environment, in a
process of its own (spin_env.py).

The task's record names its parents; their records give the artifacts it saw (and a foreach
split's own item, by index into its parent's foreach variable). The task runs again under a
new run id in a datastore of its own beside the run's, `<datastore>/_spin`, so the flow's runs,
its latest run and its namespaces stay as they were. The blobs it reads are copied there
first, so the spun task reads (and the client later shows) only that datastore. An artifacts
module (a Python file with a dict `ARTIFACTS`) replaces inputs by name, to try a change.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass

from ..datastore.flow_datastore import SPIN_DIR
from ..exceptions import RayflowException
from .artifacts import ArtifactLoc, InlineRef
from .joins import JoinTable
from .spec import ItemLoc, TaskSpec


@dataclass
class SpinResult:
    origin: str          # Flow/run/step/task that was spun
    pathspec: str        # the spun task, in the spin datastore
    datastore: str       # where it is (None when not persisted)
    ok: bool
    error: object = None  # TaskError of a failed spin


def spin_datastore_url(url: str) -> str:
    from ..datastore.storage import join_path

    return join_path(url, SPIN_DIR)


def _parse(pathspec: str, flow_name: str) -> list[str]:
    parts = [p for p in pathspec.strip("/").split("/") if p]
    if parts and parts[0] == flow_name:
        parts = parts[1:]
    if not 1 <= len(parts) <= 3:
        raise RayflowException(
            f"spin takes a step, run_id/step, run_id/step/task_id or {flow_name}/run_id/step/"
            f"task_id, not {pathspec!r}.")
    # step | run/step | run/step/task
    if len(parts) == 1:
        return [None, parts[0], None]
    if len(parts) == 2:
        return [parts[0], parts[1], None]
    return parts


def find_task(ds, loaded, pathspec: str, namespace: str | None):
    """(run_id, step, task_id, record) of the task to spin: a step alone means the latest
    run in the namespace; a step with several tasks needs the task id."""
    from ..client import Flow
    from ..client import namespace as set_namespace

    run_id, step, task_id = _parse(pathspec, loaded.name)
    if step not in loaded.graph:
        raise RayflowException(f"Flow {loaded.name} has no step {step!r}. Its steps: "
                               f"{', '.join(loaded.graph.steps)}.")
    if run_id is None:
        set_namespace(namespace)
        run = Flow(loaded.name, datastore=ds.url, _namespace_check=False).latest_run
        if run is None:
            raise RayflowException(f"Flow {loaded.name} has no run to spin a task of in "
                                   f"{ds.url}. Run it first, or name the run.")
        run_id = run.id
    if task_id is None:
        tasks = ds.list_tasks(run_id, step)
        if len(tasks) != 1:
            shown = ", ".join(tasks[:10]) or "none"
            raise RayflowException(
                f"Step {step} of {loaded.name}/{run_id} has {len(tasks)} tasks ({shown}); "
                f"name one: rayflow spin FILE {run_id}/{step}/TASK_ID.")
        task_id = tasks[0]
    rec = ds.read_task(run_id, step, task_id)
    if rec is None:
        raise RayflowException(f"Task {loaded.name}/{run_id}/{step}/{task_id} has no record "
                               f"in {ds.url}; it never started. Spin a task that ran.")
    return run_id, step, task_id, rec


def _locs(artifacts: dict) -> dict[str, ArtifactLoc]:
    return {name: ArtifactLoc.from_info(name, info) for name, info in artifacts.items()}


def _parent_records(ds, rec) -> list:
    out = []
    for pathspec in rec.parents:
        _, run_id, step, task_id = pathspec.split("/")
        parent = ds.read_task(run_id, step, task_id)
        if parent is None or parent.status != "success":
            raise RayflowException(f"Parent task {pathspec} of {rec.pathspec} did not finish, "
                                   "so the inputs of the task cannot be rebuilt.")
        out.append(parent)
    return out


def build_spec(ds, loaded, rec, overrides: dict[str, ArtifactLoc],
               per_input: dict[str, dict[str, ArtifactLoc]] | None = None) -> TaskSpec:
    """The task's spec as it first ran: what it saw, from its parents' records. `overrides`
    replace inputs by name; `per_input` (parent pathspec -> name -> location) replace those
    of one parent only."""
    per_input = per_input or {}
    node = loaded.graph[rec.step]
    parents = _parent_records(ds, rec)
    stack = tuple(tuple(f) for f in rec.foreach_stack)
    spec = TaskSpec(rec.step, rec.task_id, 0, stack, parents=tuple(rec.parents))

    def view_of(parent) -> dict[str, ArtifactLoc]:
        return {**_locs(parent.artifacts), **overrides, **per_input.get(parent.pathspec, {})}

    if node.is_join:
        spec.join = JoinTable.of([(p.step, p.task_id, view_of(p)) for p in parents])
        return spec
    if parents:
        parent = parents[0]
        spec.view = view_of(parent)
        pnode = loaded.graph[parent.step]
        if pnode.foreach_param is not None and stack:
            var = pnode.foreach_param
            info = parent.artifacts.get(var)
            if info is None:
                raise RayflowException(f"Parent {parent.pathspec} has no foreach variable "
                                       f"{var!r} in its record.")
            frame = next((f for f in reversed(stack) if f[0] == parent.step), stack[-1])
            index = frame[1]
            items = list(ds.load_artifact(info, f"self.{var} of {parent.pathspec}"))
            spec.item = ItemLoc(InlineRef([items[index]]), 0, var, info.sha, index)
    else:  # start: the run's parameters, configs and constants, as its record kept them
        from ..config import flow_configs
        from ..parameters import flow_constant_names, flow_parameters

        names = {p.artifact_name for p in flow_parameters(loaded.cls)} | \
            {c.artifact_name for c in flow_configs(loaded.cls)} | \
            set(flow_constant_names(loaded.cls))
        names.add("_graph_info")
        spec.view = {**{n: loc for n, loc in _locs(rec.artifacts).items() if n in names},
                     **overrides}
    return spec


def _as_mutated(loaded, params: dict):
    """The flow as its mutators leave it for the origin's configs (they may add parameters,
    which the start task reads)."""
    import dataclasses

    from ..config import flow_configs
    from ..user_decorators.process import mutated_class

    configs = {c.name: params.get(c.artifact_name) for c in flow_configs(loaded.cls)}
    return dataclasses.replace(loaded, cls=mutated_class(loaded.cls, configs))


def _copy_blobs(origin, target, locs) -> None:
    """Copy the blobs the spun task reads into its own datastore (present ones are kept)."""
    shas = sorted({loc.sha for loc in locs if loc.inline is None})
    paths = [origin.cas.blob_path(sha) for sha in shas]
    present = target.storage.exists_many(paths)
    missing = [p for p, there in zip(paths, present) if not there]
    if missing:
        target.storage.put_many(list(zip(missing, origin.storage.get_many(missing))))


def load_artifacts_module(path: str) -> dict:
    spec = importlib.util.spec_from_file_location("rayflow_spin_artifacts", path)
    if spec is None or not os.path.isfile(path):
        raise RayflowException(f"--artifacts-module {path!r} is not a Python file. Pass a file "
                               "that defines ARTIFACTS = {{name: value, ...}}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    artifacts = getattr(module, "ARTIFACTS", None)
    if not isinstance(artifacts, dict):
        raise RayflowException(f"--artifacts-module {path}: define a dict ARTIFACTS of "
                               "artifact names to values.")
    return artifacts


def _overrides(target, rec, path: str | None):
    """The artifacts module's values, saved in the spin datastore: (by name for every input,
    by parent pathspec for one input). A key that names a parent task (`run/step/task`, with
    or without the flow) holds a dict of that input's replacements, as in Metaflow."""
    if not path:
        return {}, {}
    values = load_artifacts_module(path)
    parents = {p: p for p in rec.parents}
    parents.update({p.split("/", 1)[1]: p for p in rec.parents})
    per_input = {}
    for key in [k for k in values if k in parents and isinstance(values[k], dict)]:
        per_input[parents[key]] = _locs(target.save_artifacts(values.pop(key)))
    return _locs(target.save_artifacts(values)), per_input


def _spin_configs(loaded, params: dict, config_files=None, config_values=None) -> dict:
    """The origin run's parameters, with the configs given to spin (--config, --config-value)
    in place of the run's."""
    if not config_files and not config_values:
        return params
    from ..config import resolve_configs

    given = {**(config_files or {}), **(config_values or {})}
    resolved = resolve_configs(loaded.cls, config_files, config_values)
    return {**params, **{k: v for k, v in resolved.items() if k in given}}


@dataclass
class SpinOptions:
    """What `rayflow spin` takes beside the task: see `spin`."""

    artifacts_module: str | None = None
    skip_decorators: bool = False
    persist: bool = True
    namespace: str | None = None
    user: str | None = None
    run_id_file: str | None = None
    runner_attribute_file: str | None = None
    with_decorators: tuple[str, ...] = ()     # top-level --with, as in a run
    config_files: dict | None = None          # --config NAME FILE
    config_values: dict | None = None         # --config-value NAME JSON
    branch: str | None = None                 # @project's --branch / --production
    production: bool | None = None


def _spin_context(loaded, target, origin_run_id: str, params: dict, opts: SpinOptions, user):
    import json

    from ..config import apply_configs, config_values_of, resolve_delayed
    from ..project import resolve_project
    from .flowfile import step_code_hashes
    from .parameters_task import GRAPH_INFO, run_graph_info
    from .spec import RunContext

    apply_configs(loaded.cls, params)
    configs = config_values_of(loaded.cls)
    project = resolve_project(loaded.cls, loaded.name, user, opts.branch, opts.production,
                              resolve_value=lambda v: resolve_delayed(v, configs))
    # What every task of a run inherits, as a run gives it: the flow's `name`, its class-level
    # constants, the parameters and the graph (a spun join sees them as the original did).
    from ..parameters import flow_constants

    info = target.save_artifacts({"name": loaded.cls.__name__, **flow_constants(loaded.cls),
                                  **params,
                                  GRAPH_INFO: run_graph_info(loaded.cls, loaded.graph)})
    return RunContext(
        flow_file=loaded.file, module_name=loaded.module_name, class_name=loaded.cls.__name__,
        flow_name=loaded.name, run_id=target.new_run_id(), datastore_url=target.url,
        params=params, param_locs=_locs(info),
        code_hashes=step_code_hashes(loaded.cls, loaded.graph), user=user,
        origin_run_id=origin_run_id, namespace=opts.namespace,
        with_decorators=tuple(opts.with_decorators),
        source_dir=os.path.dirname(loaded.file),
        project=project.to_json() if project else None,
        sys_tags=project.sys_tags if project else [],
        configs_key=json.dumps(configs, sort_keys=True, default=repr))


def _write_spin_files(opts: SpinOptions, ctx, step: str, task_id: str) -> None:
    import json

    from .run_record import write_run_id_file

    for path, text in ((opts.run_id_file, ctx.run_id), (opts.runner_attribute_file, json.dumps(
            {"flow_name": ctx.flow_name, "run_id": ctx.run_id, "step_name": step,
             "task_id": task_id, "datastore": ctx.datastore_url}))):
        if path:
            write_run_id_file(path, text)


def spin(loaded, pathspec: str, datastore_url: str, opts: SpinOptions | None = None
         ) -> SpinResult:
    from ..datastore import FlowDataStore, RunRecord
    from ..parameters import params_as_json
    from .resume import origin_parameters
    from .run_record import username
    from .spin_env import run_in_environment, run_spun_task

    opts = opts or SpinOptions()
    origin = FlowDataStore.from_url(datastore_url, loaded.name)
    origin.storage.check_writable()
    run_id, step, task_id, rec = find_task(origin, loaded, pathspec, opts.namespace)
    target = FlowDataStore.from_url(spin_datastore_url(origin.url), loaded.name)
    overrides, per_input = _overrides(target, rec, opts.artifacts_module)
    params = _spin_configs(loaded, origin_parameters(origin, run_id, loaded.cls,
                                                     loaded.graph.start_step),
                           opts.config_files, opts.config_values)
    spec = build_spec(origin, _as_mutated(loaded, params), rec, overrides, per_input)
    _copy_blobs(origin, target, list(spec.view.values()) +
                (list(spec.join.locations()) if spec.join else []))
    user = opts.user or username()
    ctx = _spin_context(loaded, target, run_id, params, opts, user)
    env = _environment(ctx, step, opts.skip_decorators)  # before the run record: may refuse
    record = RunRecord(flow=loaded.name, run_id=ctx.run_id, user=user,
                       params=params_as_json(params), tags=[],
                       sys_tags=[f"user:{user}", "runtime:rayflow", "spin",
                                 f"spin_of:{rec.pathspec}", *ctx.sys_tags],
                       status="running", started_at=time.time(), flow_file=loaded.file,
                       origin_run_id=run_id, datastore=target.url, project=ctx.project)
    if opts.persist:
        target.write_run(record)
    _write_spin_files(opts, ctx, step, task_id)
    if env is not None and env.path is not None:
        outcome = run_in_environment(env, ctx, spec, opts.skip_decorators, opts.persist)
    else:
        outcome = run_spun_task(ctx, spec, opts.skip_decorators, opts.persist)
    if opts.persist:
        record.status = "success" if outcome.ok else "failed"
        record.finished_at = time.time()
        target.write_run(record)
    return SpinResult(rec.pathspec, f"{loaded.name}/{ctx.run_id}/{step}/{task_id}",
                      target.url if opts.persist else None, outcome.ok, outcome.error)


def _environment(ctx, step: str, skip_decorators: bool):
    """The @pypi/@conda environment the spun task runs in (spin_env.py), built now if it is
    not yet; None for a step without one. Its task record keeps it, as a run's does."""
    import sys

    from ..decorators import StepDecorators
    from .spin_env import spin_environment
    from .worker import worker_flow
    from .worker_task import WorkerFlow

    wf = worker_flow(ctx)
    if skip_decorators:
        wf = WorkerFlow(wf.cls, wf.graph, {**wf.decorators, step: StepDecorators([])})
    env = spin_environment(wf, step, lambda text: print(text, file=sys.stderr, flush=True))
    if env is not None:
        ctx.environments = {step: env.lineage()}
    return env
