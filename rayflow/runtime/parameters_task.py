"""A run's `_parameters` task and its `_graph_info` artifact, as Metaflow keeps them.

Before the first step runs, the driver writes one task of the hidden step `_parameters`: its
artifacts are the run's parameters, configs and class-level constants, and `_graph_info`
(the flow's graph: rayflow.graph.info), and its metadata names the run's start and end steps.
Readers find the run's endpoints there (`Run.end_task` of a flow whose end step is not named
`end`), and cards draw the DAG from `_graph_info`. Every task inherits `_graph_info` as it
inherits the parameters: the same content-addressed blob, stored once.
"""

from __future__ import annotations

import platform
import time

from ..graph.info import decorator_info, graph_info
from ..parameters import flow_constants, flow_parameters

PARAMETERS_STEP = "_parameters"
PARAMETERS_TASK_ID = "0"
GRAPH_INFO = "_graph_info"


def run_graph_info(flow_cls, graph, decos: dict | None = None, extra=()) -> dict:
    """`_graph_info` of a run: its graph, with the decorators each step runs with (those
    `--with` added are not `statically_defined`)."""
    from ..config import flow_configs

    added = [id(d) for d in extra]
    steps = {}
    for name, step_decos in (decos or {}).items():
        steps[name] = [decorator_info(d, statically_defined=id(d) not in added)
                       for d in step_decos.all if not d.name.startswith("_")]
    params = [(p.name, type(p).__name__) for p in flow_parameters(flow_cls)]
    params += [(c.name, type(c).__name__) for c in flow_configs(flow_cls)]
    constants = [(n, type(v).__name__) for n, v in flow_constants(flow_cls).items()]
    return graph_info(graph, steps, parameters=params, constants=constants)


def write_parameters_task(ds, ctx, graph, infos: dict) -> None:
    """The run's `_parameters` task: `infos` are the saved artifacts of the parameters,
    constants and `_graph_info`."""
    from ..datastore import TaskRecord
    from ..parameters import params_as_json

    now = time.time()
    ds.write_task(TaskRecord(
        flow=ctx.flow_name, run_id=ctx.run_id, step=PARAMETERS_STEP,
        task_id=PARAMETERS_TASK_ID, status="success", artifacts=dict(infos),
        params=params_as_json(ctx.params), user=ctx.user, started_at=now, finished_at=now,
        python_version=platform.python_version(),
        metadata={"start_step": graph.start_step, "end_step": graph.end_step}))
