"""Metaflow's `metaflow.unbounded_foreach` names. An unbounded foreach (a foreach whose width a
plugin decides, such as @parallel's control task) is not something rayflow runs yet: a foreach
over an `UnboundedForeachInput` is refused when the step fans out (see
`rayflow.runtime.worker_task`), with what to do instead."""

CONTROL_TASK_TAG = "control_task"
UBF_CONTROL = "ubf_control"
UBF_TASK = "ubf_task"


class UnboundedForeachInput:
    """Base class of the inputs of an unbounded foreach (Metaflow's plugins subclass it)."""
