"""FlowState: everything rayflow keeps on a flow instance while one task runs, in one place.

A FlowSpec instance lives for one task (or serves as one read-only input of a join). The
runtime attaches a `FlowState` to it as `flow.__dict__["_rf"]` before the step runs; every
other name in the instance's `__dict__` is an artifact, as in Metaflow, unless it starts with
`__`, is one of Metaflow's own private names, or holds a function or method
(`is_artifact_name`, `is_artifact_value`). Code that
needs the state calls `state_of(flow)`; nothing reads or writes private keys of its own.

This module never imports ray, and knows nothing of how artifacts are stored: `loader` turns a
location into a value, and locations are opaque here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import FunctionType, MethodType
from typing import Any, Callable

STATE_KEY = "_rf"

# Names on a flow instance that are never artifacts (Metaflow's FlowSpec._EPHEMERAL, and ours).
# Any other name not starting with "__" is one, "_x" included: Metaflow keeps and passes on
# single-underscore attributes, and only its client hides them when listing a task's data.
EPHEMERAL_NAMES = frozenset({STATE_KEY, "_EPHEMERAL", "_NON_PARAMETERS", "_datastore",
                             "_cached_input", "_graph", "_flow_state", "_steps"})


def is_artifact_name(name: str) -> bool:
    return not name.startswith("__") and name not in EPHEMERAL_NAMES


def is_artifact_value(value) -> bool:
    """False for what Metaflow silently leaves out of a task's artifacts: functions (lambdas
    included) and bound methods. Any other callable (a class, a builtin, a partial, an object
    with __call__) is pickled like any value."""
    return not isinstance(value, (FunctionType, MethodType))

_UNSET = object()


@dataclass(slots=True)
class FlowState:
    step: str                               # the running step (for an input: its own step)
    params: dict[str, Any]                  # parameter values, read through Parameter.__get__
    view: dict[str, Any]                    # inherited artifact name -> location, not loaded
    loader: Callable[[Any], Any]            # location -> value
    foreach_stack: list = field(default_factory=list)  # (split step, index, num splits)
    foreach_vars: list = field(default_factory=list)   # the foreach variable of each frame
    input_loader: Callable[[], Any] | None = None      # loads this split's own item
    # What happened during the step:
    loaded: dict[str, tuple[Any, int]] = field(default_factory=dict)  # name -> (loc, id(value))
    transition: tuple | None = None         # (step names, foreach var) from self.next()
    input_value: Any = _UNSET               # self.input, once loaded
    frame_inputs: dict[int, Any] = field(default_factory=dict)  # outer frames' items, loaded
    adopted: dict[str, Any] = field(default_factory=dict)  # merged from a join's inputs
    removed: set[str] = field(default_factory=set)         # inherited names the step deleted
    # Lineage of a join: "step/task:name" -> hash of each input artifact it read.
    join_reads: dict[str, str] = field(default_factory=dict)
    # On a join's input view: where its reads are recorded (the join's `note_read`).
    read_sink: Callable[[str, str], None] | None = None

    def attach(self, flow) -> None:
        flow.__dict__[STATE_KEY] = self

    def frame_input(self, flow, i: int) -> Any:
        """The item of foreach frame `i` of this task: the split's own item when this is the
        split's first step (shipped to it alone), else element `index` of the frame's foreach
        variable, read from the inherited artifacts as Metaflow does (None when the variable
        is not visible here, e.g. in the join of an inner foreach)."""
        innermost = i == len(self.foreach_stack) - 1
        if innermost and self.input_value is not _UNSET:
            return self.input_value
        if innermost and self.input_loader is not None:
            self.input_value = self.input_loader()
            return self.input_value
        if i in self.frame_inputs:
            return self.frame_inputs[i]
        value = None
        var = self.foreach_vars[i] if i < len(self.foreach_vars) else None
        if var:
            try:
                items = getattr(flow, var)
            except AttributeError:
                items = None
            if items is not None:
                index = self.foreach_stack[i][1]
                try:
                    value = items[index]
                except TypeError:  # an iterable without indexing (a set, a generator's list)
                    value = list(items)[index]
        self.frame_inputs[i] = value
        return value


def state_of(flow) -> FlowState | None:
    """The state attached to `flow`, or None outside a running task."""
    return flow.__dict__.get(STATE_KEY)
