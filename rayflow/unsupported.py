"""Metaflow names rayflow does not honour yet: importable, so a flow's import line works, and
refused with one message when used (never silently ignored).

- `@parallel` (and `self.next(..., num_parallel=N)`): gang-scheduled tasks. The decorator
  marks the step; the flow's lint refuses it when the flow loads (see
  `rayflow.graph.lint.check_no_refused_decorators`), naming the step and its line. To support
  it, replace `parallel` here with a real decorator and drop its entry from
  `REFUSED_STEP_DECORATORS`.
- `@pytorch_parallel`: as @parallel.
- `Deployer`, `NBDeployer`, `DeployedFlow`: deploying to a production orchestrator; refused
  when called. `ArgoEvent` (`metaflow.integrations`): publishing an event; refused when made.
"""

from __future__ import annotations

from .decorators import StepDecorator, _make
from .exceptions import RayflowException


class UnsupportedFeature(RayflowException):
    headline = "Not supported by rayflow yet"


# Step decorators that load but are refused by the lint: name -> (what it is, what to do).
REFUSED_STEP_DECORATORS: dict[str, tuple[str, str]] = {
    "parallel": (
        "@parallel (gang-scheduled tasks that start together and talk to each other) is a "
        "Metaflow feature rayflow does not support yet",
        "To run N copies of the step, fan out with a foreach: `self.workers = list(range(N))`"
        " then `self.next(self.train, foreach='workers')`; for distributed training, start "
        "the framework's own Ray integration (Ray Train) inside one step."),
    "pytorch_parallel": (
        "@pytorch_parallel (a @parallel step that runs torch.distributed across its tasks) is a "
        "Metaflow feature rayflow does not support yet",
        "For distributed PyTorch, start Ray Train's TorchTrainer inside one step; to run N "
        "independent copies of the step, fan out with a foreach over list(range(N))."),
}


class RefusedStepDecorator(StepDecorator):
    """Marks a step with a decorator rayflow refuses; takes any attributes (the lint refuses
    the flow before they matter)."""

    def __init__(self, **attributes):
        self.attributes = dict(attributes)


class ParallelDecorator(RefusedStepDecorator):
    name = "parallel"


class PytorchParallelDecorator(RefusedStepDecorator):
    name = "pytorch_parallel"


parallel = _make(ParallelDecorator)
pytorch_parallel = _make(PytorchParallelDecorator)


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
