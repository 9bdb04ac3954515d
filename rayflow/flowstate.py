"""FlowState: everything rayflow keeps on a flow instance while one task runs, in one place.

A FlowSpec instance lives for one task (or serves as one read-only input of a join). The
runtime attaches a `FlowState` to it as `flow.__dict__["_rf"]` before the step runs; every
other name in the instance's `__dict__` that does not start with `_` is an artifact. Code that
needs the state calls `state_of(flow)`; nothing reads or writes private keys of its own.

This module never imports ray, and knows nothing of how artifacts are stored: `loader` turns a
location into a value, and locations are opaque here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

STATE_KEY = "_rf"

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
