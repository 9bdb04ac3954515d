"""Drive flows from Python, as Metaflow's `metaflow.Runner` and `NBRunner` do.

`Runner("flow.py").run(alpha=1)` runs the flow in a subprocess through the `rayflow` CLI and
hands back an `ExecutingRun` whose `.run` is the client's `Run`; `NBRunner(FlowClass)` does the
same for a flow defined in a notebook cell (or anywhere the class's source can be read).
"""

from .nbrun import NBRunner, NBRunnerInitializationError
from .process import ExecutingRun
from .runner import Runner

__all__ = ["Runner", "NBRunner", "NBRunnerInitializationError", "ExecutingRun"]
