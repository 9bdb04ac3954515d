"""@parallel: a gang-scheduled step, as Metaflow's `@parallel` with `self.next(self.train,
num_parallel=N)`.

The step runs as N tasks (members) that start together on one Ray placement group, one
bundle per member sized by the step's @resources, and live or die as one: a member that fails
fails the gang, the others are stopped, and @retry runs the whole gang again
(`rayflow/runtime/gang.py`). Member 0 is the control task. Inside the step:

- `current.parallel`: `Parallel(main_ip, num_nodes, node_index, control_task_id)`;
- `current.is_parallel`: True;
- the environment torchrun would set: MASTER_ADDR (the control member's node), MASTER_PORT (a
  free port there), WORLD_SIZE, RANK, LOCAL_RANK (and LOCAL_WORLD_SIZE, GROUP_RANK), plus
  Metaflow's MF_PARALLEL_* variables.

`@parallel(strategy="PACK")` (rayflow's own attribute; RAYFLOW_GANG_STRATEGY sets the
default, SPREAD) picks how members are spread over the nodes: SPREAD, STRICT_SPREAD, PACK or
STRICT_PACK, Ray's placement group strategies. `@pytorch_parallel` is the same decorator.
"""

from __future__ import annotations

from collections import namedtuple

from .decorators import StepDecorator, _make
from .exceptions import InvalidFlowError

# Metaflow's metaflow_current.Parallel.
Parallel = namedtuple("Parallel", ["main_ip", "num_nodes", "node_index", "control_task_id"])

STRATEGIES = ("SPREAD", "STRICT_SPREAD", "PACK", "STRICT_PACK")

# The foreach variable a num_parallel split fans out over (Metaflow's name): one item per
# member, its node index.
PARALLEL_VAR = "_parallel_ubf_iter"


def check_strategy(value, where: str) -> str:
    text = str(value or "").strip().upper()
    if text not in STRATEGIES:
        raise InvalidFlowError(f"{where}: strategy {value!r} is not one of "
                               f"{', '.join(STRATEGIES)} (Ray placement group strategies).")
    return text


class ParallelDecorator(StepDecorator):
    """Marks a gang-scheduled step (see the module's docstring)."""

    name = "parallel"
    defaults = {"strategy": None}
    IS_PARALLEL = True

    def validate(self) -> None:
        if self.attributes["strategy"] is not None:
            self.attributes["strategy"] = check_strategy(self.attributes["strategy"],
                                                         f"@{self.name}")


class PytorchParallelDecorator(ParallelDecorator):
    name = "pytorch_parallel"


parallel = _make(ParallelDecorator)
pytorch_parallel = _make(PytorchParallelDecorator)

PARALLEL_DECORATORS = ("parallel", "pytorch_parallel")


def gang_strategy(decos) -> str:
    """The placement strategy of a step's gang: @parallel(strategy=), else the setting."""
    from . import settings

    for name in PARALLEL_DECORATORS:
        deco = decos.get(name)
        if deco is not None and deco.attributes.get("strategy"):
            return deco.attributes["strategy"]
    return check_strategy(settings.GANG_STRATEGY.get(), settings.GANG_STRATEGY.name)


def is_parallel_step(decos) -> bool:
    return any(decos.get(name) is not None for name in PARALLEL_DECORATORS)
