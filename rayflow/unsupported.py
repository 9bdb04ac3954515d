"""Metaflow names rayflow does not honour yet: importable, so a flow's import line works, and
refused with one message when used (never silently ignored).

- `Deployer`, `NBDeployer`, `DeployedFlow`: deploying to a production orchestrator; refused
  when called. `ArgoEvent` (`metaflow.integrations`): publishing an event; refused when made.

Names that are accepted but not fully acted on say so once, in one line, when a run starts
(`run_notes`): @schedule, @trigger and @trigger_on_finish (they act when a flow is deployed),
@kubernetes and @batch (the step runs on the run's Ray, sized by their cpu/gpu/memory),
@resources(disk=, shared_memory=).
"""

from __future__ import annotations

from .exceptions import RayflowException


class UnsupportedFeature(RayflowException):
    headline = "Not supported by rayflow yet"


def _refused_class(name: str, what: str, instead: str) -> type:
    def __init__(self, *args, **kwargs):
        raise UnsupportedFeature(f"{name}(...): {what}; rayflow does not support it yet. "
                                 f"{instead}")

    return type(name, (), {"__init__": __init__, "__doc__": f"Refused: {what}."})


_DEPLOY_WHAT = ("deploying a flow to a production orchestrator (Argo Workflows, Step "
                "Functions, Airflow) is a Metaflow feature")
_DEPLOY_INSTEAD = ("Run the flow with Runner('flow.py').run() (NBRunner in a notebook) or "
                   "`python flow.py run`; to run it on a schedule, call `rayflow run` from "
                   "your scheduler (cron, Airflow, ...).")
Deployer = _refused_class("Deployer", _DEPLOY_WHAT, _DEPLOY_INSTEAD)
NBDeployer = _refused_class("NBDeployer", _DEPLOY_WHAT, _DEPLOY_INSTEAD)
DeployedFlow = _refused_class("DeployedFlow", _DEPLOY_WHAT, _DEPLOY_INSTEAD)
ArgoEvent = _refused_class(
    "ArgoEvent", "publishing an event to Argo Workflows (which starts flows deployed with "
    "@trigger) is a Metaflow feature",
    "rayflow runs flows when asked, not on events: start the flow that waits for the event "
    "with Runner('flow.py').run() or `rayflow run` from the code that would publish it.")


# ------------------------------------------------------------------ accepted, said once
# Flow decorators that only a production scheduler acts on: accepted, shown by `rayflow show`,
# and noted once when a run starts (rayflow starts a run when asked, once).
DEPLOY_ONLY_FLOW_DECORATORS = ("schedule", "trigger", "trigger_on_finish")
# Step decorators that send a step elsewhere in Metaflow: here it runs on the run's Ray.
COMPUTE_DECORATORS = {"kubernetes": "Kubernetes", "batch": "AWS Batch"}
_RESOURCE_KEYS = ("cpu", "gpu", "memory")


def _call_text(name: str, attributes: dict, width: int = 80) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in attributes.items())
    text = f"@{name}({args})" if args else f"@{name}"
    return text if len(text) <= width else text[:width - 4] + "...)"


def flow_decorator_lines(flow_cls) -> list[str]:
    """The flow-level decorators as `rayflow show` lists them, each with what rayflow does
    with it."""
    from .decorators import flow_decorator_records

    lines = []
    for rec in flow_decorator_records(flow_cls):
        what = " (takes effect when the flow is deployed to a scheduler; rayflow does not " \
               "deploy yet)" if rec.name in DEPLOY_ONLY_FLOW_DECORATORS else ""
        lines.append(_call_text(rec.name, dict(rec.attributes), width=120) + what)
    return lines


def run_notes(flow_cls, decos: dict) -> list[str]:
    """One line for each kind of decorator a run accepts but does not fully act on:
    @schedule / @trigger / @trigger_on_finish together, then @kubernetes and @batch."""
    from .decorators import flow_decorator_records

    notes = []
    deploy = [_call_text(r.name, dict(r.attributes)) for r in flow_decorator_records(flow_cls)
              if r.name in DEPLOY_ONLY_FLOW_DECORATORS]
    if deploy:
        notes.append(f"Note: {', '.join(deploy)} take{'s' if len(deploy) == 1 else ''} effect "
                     "only when the flow is deployed to a scheduler, which rayflow does not "
                     "do yet: this run starts now, once.")
    for name, where in COMPUTE_DECORATORS.items():
        steps, ignored = [], set()
        for step, step_decos in decos.items():
            for deco in step_decos.all_named(name):
                steps.append(step)
                ignored |= {k for k, v in deco.attributes.items()
                            if k not in _RESOURCE_KEYS and v is not None}
        if steps:
            rest = f"; {', '.join(sorted(ignored))} ignored" if ignored else ""
            notes.append(f"Note: @{name} (step{'s' if len(steps) > 1 else ''} "
                         f"{', '.join(steps)}) runs on this run's Ray, not on {where}: its "
                         f"cpu, gpu and memory are the task's Ray resources{rest}.")
    return notes + _resources_notes(decos)


def _resources_notes(decos: dict) -> list[str]:
    """@resources(disk=, shared_memory=): Ray reserves neither (Metaflow's local runtime
    ignores them too; its Kubernetes and Batch use them)."""
    steps, keys = [], set()
    for step, step_decos in decos.items():
        for deco in step_decos.all_named("resources"):
            given = {k for k in ("disk", "shared_memory") if deco.attributes.get(k) is not None}
            if given:
                steps.append(step)
                keys |= given
    if not steps:
        return []
    return [f"Note: @resources({', '.join(sorted(keys))}=...) (step"
            f"{'s' if len(steps) > 1 else ''} {', '.join(steps)}): Ray does not reserve disk "
            "or shared memory for a task; only cpu, gpu, memory, accelerator and custom "
            "resources are."]
