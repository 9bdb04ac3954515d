"""FlowSpec and @step: the user-facing shape of a flow, with Metaflow's names and meaning.

A FlowSpec instance lives for one task, inside a Ray worker. Artifacts it inherits are not
loaded up front: attribute access loads them lazily from the Ray object store (or, on resume,
from the datastore), so a split that never touches the parent's list never copies it. Whatever
the step assigns to `self.<name>` becomes an artifact of this task. This module never imports
ray; loading goes through a callable the runtime provides.
"""

from __future__ import annotations

import sys
from collections import namedtuple
from typing import Any, Callable, Iterator

from .exceptions import (
    InvalidNextError,
    MergeArtifactsError,
    MetaflowExceptionWrapper,
    RayflowException,
)
from .flowstate import is_artifact_name, is_artifact_value, state_of
from .parameters import Parameter, flow_constant_names

# FlowSpec's own API (and Metaflow's reserved words): no step and no artifact may take these
# names, since they would shadow what every flow relies on. The lint refuses such step names;
# assigning such an artifact raises at once.
RESERVED_NAMES = frozenset({
    "name", "next", "input", "index", "cmd", "foreach_stack", "merge_artifacts", "script_name",
})


def step(func: Callable | None = None, *, start: bool = False, end: bool = False):
    """Mark a method as a step of the flow. Other step decorators go above it.

    `@step(start=True)` makes the step the flow's start (entry) step and `@step(end=True)` its
    end (terminal) step, whatever their names (Metaflow 2.19); without them the steps named
    `start` and `end` are, and a flow of one step has it as both."""

    def mark(func: Callable) -> Callable:
        func.is_step = True
        func.decorators = []
        func.wrappers = []            # user step decorators (UserStepDecorator)
        func.config_decorators = []   # StepMutators
        func.name = func.__name__
        func.is_start_step = bool(start)
        func.is_end_step = bool(end)
        return func

    return mark if func is None else mark(func)


ForeachFrame = namedtuple("ForeachFrame", ["step", "var", "num_splits", "index", "value"])

# What @catch stores: Metaflow's MetaflowExceptionWrapper (type, exception, stacktrace).
StepException = MetaflowExceptionWrapper


class FlowSpec:
    """Base class of every flow. Subclass it, add @step methods, and call `MyFlow()` under
    `if __name__ == "__main__":` so that `python flow.py run` works as in Metaflow."""

    def __init__(self, use_cli: bool = True):
        if use_cli:
            from rayflow_cli.main import main_for_flow

            main_for_flow(type(self))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: an inherited artifact not loaded yet (one
        # named `_x` too, as in Metaflow; never a dunder or one of the private names).
        if not is_artifact_name(name):
            raise AttributeError(name)
        state = state_of(self)
        if name.startswith("_") and (state is None or name not in state.view):
            raise AttributeError(name)
        if state is None or name not in state.view:
            step_name = state.step if state is not None else "?"
            raise AttributeError(
                f"Flow {type(self).__name__} has no artifact {name!r} in step {step_name!r}. "
                f"Set self.{name} in an earlier step (in a join, use merge_artifacts or read "
                f"it from inputs)."
            )
        loc = state.view[name]
        value = state.loader(loc)
        self.__dict__[name] = value
        state.loaded[name] = (loc, id(value))
        if state.read_sink is not None:  # an input of a join: the join's lineage records it
            state.read_sink(name, loc.sha)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RESERVED_NAMES:
            raise AttributeError(
                f"{name!r} is a reserved name in a flow; pick another artifact name.")
        if name in flow_constant_names(type(self)):
            raise AttributeError(
                f"{name!r} is a class-level constant of flow {type(self).__name__}: flow level "
                f"attributes and Parameters are not modifiable. Store the new value under "
                f"another name.")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        # As Metaflow 2.19: `del` drops only the value this instance holds. An inherited
        # artifact stays inherited (read again if read, and passed on to the next steps).
        # Metaflow raises AttributeError for one not read in this step; rayflow lets that
        # `del` do nothing rather than fail a step over a no-op.
        state = state_of(self)
        inherited = state is not None and name in state.view
        if name not in self.__dict__ and not inherited:
            raise AttributeError(
                f"Flow {type(self).__name__} has no artifact {name!r} to delete.")
        self.__dict__.pop(name, None)

    # ----------------------------------------------------------------------- Metaflow's API
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def _graph(self):
        """The flow's graph as Metaflow's `FlowSpec._graph` (rayflow.graph.dag)."""
        from .graph.dag import flow_dag

        return flow_dag(type(self))

    @property
    def script_name(self) -> str:
        import os

        return os.path.basename(sys.modules[type(self).__module__].__file__ or "")

    @property
    def index(self) -> int | None:
        state = state_of(self)
        stack = state.foreach_stack if state is not None else []
        return stack[-1][1] if stack else None

    @property
    def input(self) -> Any:
        """The item of the innermost foreach that this split works on (also in the later
        steps of the foreach's body)."""
        state = state_of(self)
        if state is None or not state.foreach_stack:
            return None
        return state.frame_input(self, len(state.foreach_stack) - 1)

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for each enclosing foreach, outermost first. An outer
        value is read from its (inherited) foreach variable, as in Metaflow: None where that
        variable is not visible."""
        state = state_of(self)
        if state is None:
            return []
        return [(index, num, state.frame_input(self, i))
                for i, (_step, index, num) in enumerate(state.foreach_stack)]

    def __str__(self) -> str:
        """`<flow F step s[0,2] (input: x)>`, as Metaflow names a flow in its messages."""
        step_name = self._current_step
        if not step_name:
            return f"<flow {self.name}>"
        index = ",".join(str(idx) for idx, _, _ in self.foreach_stack())
        if not index:
            return f"<flow {self.name} step {step_name}>"
        item = self.input
        if item is None:
            return f"<flow {self.name} step {step_name}[{index}]>"
        text = str(item)
        text = text[:20] + "..." if len(text) > 20 else text
        return f"<flow {self.name} step {step_name}[{index}] (input: {text})>"

    # Metaflow's private attributes that code written for it reads.
    @property
    def _current_step(self) -> str | None:
        state = state_of(self)
        return state.step if state is not None else None

    @property
    def _foreach_stack(self) -> list:
        """Metaflow's ForeachFrame(step, var, num_splits, index, value) per enclosing foreach."""
        state = state_of(self)
        if state is None:
            return []
        out = []
        for i, (split_step, index, num) in enumerate(state.foreach_stack):
            var = state.foreach_vars[i] if i < len(state.foreach_vars) else None
            out.append(ForeachFrame(split_step, var, num, index, None))
        return out

    def next(self, *steps: Callable, foreach: str | None = None, condition: str | None = None,
             **kwargs) -> None:
        """Declare the step(s) that run after this one: `self.next(a)`, `self.next(a, b)`,
        `self.next(a, foreach="var")` (one split per item of self.var),
        `self.next(a, num_parallel=N)` (a gang of N tasks of a @parallel step), or a switch,
        `self.next({"x": self.a, "y": self.b}, condition="var")` (the case self.var names)."""
        state = state_of(self)
        here = state.step if state is not None else "?"
        if "num_parallel" in kwargs:
            foreach = self._parallel_split(here, steps, foreach, kwargs.pop("num_parallel"))
        if kwargs:
            raise InvalidNextError(
                f"Step {here!r}: self.next() got unsupported arguments {sorted(kwargs)}; rayflow "
                f"supports self.next(a), self.next(a, b), self.next(a, foreach='var') and "
                f"self.next({{value: self.a, ...}}, condition='var').", step=here)
        if state is not None and state.transition is not None:
            raise InvalidNextError(
                f"Step {here!r} called self.next() twice. Call it once, as the last line.",
                step=here)
        if condition is not None or (len(steps) == 1 and isinstance(steps[0], dict)):
            steps = (self._switch_case(here, steps, foreach, condition),)
        names = [_step_name(here, target) for target in steps]
        if foreach is not None and not isinstance(foreach, str):
            raise InvalidNextError(
                f"Step {here!r}: foreach= takes the artifact's name as a string, e.g. "
                f"foreach='items'.", step=here)
        if state is not None:
            state.transition = (tuple(names), foreach)

    def _parallel_split(self, here: str, steps: tuple, foreach, num_parallel) -> str:
        """`self.next(self.x, num_parallel=N)`: a gang of N tasks of x, each with its node
        index as `self.input` (a foreach over range(N), as Metaflow's)."""
        from .parallel import PARALLEL_VAR

        if foreach is not None or len(steps) != 1:
            raise InvalidNextError(
                f"Step {here!r}: num_parallel= takes exactly one next step and no foreach=: "
                f"self.next(self.train, num_parallel=4).", step=here)
        if isinstance(num_parallel, bool) or not isinstance(num_parallel, int) or \
                num_parallel < 1:
            raise InvalidNextError(
                f"Step {here!r}: num_parallel={num_parallel!r} is not a whole number of at "
                f"least 1 (the number of tasks of the @parallel step).", step=here)
        setattr(self, PARALLEL_VAR, list(range(num_parallel)))
        return PARALLEL_VAR

    def _switch_case(self, here: str, steps: tuple, foreach, condition):
        """The step a switch chose: the case that self.<condition> names."""
        if condition is None:
            raise InvalidNextError(
                f"Step {here!r}: self.next() got a dict of cases without condition=. Name the "
                f"artifact that picks the case: self.next({{...}}, condition='choice').",
                step=here)
        if len(steps) != 1 or not isinstance(steps[0], dict) or not steps[0]:
            raise InvalidNextError(
                f"Step {here!r}: with condition=, self.next() takes one non-empty dict of "
                f"cases, e.g. self.next({{'a': self.a, 'b': self.b}}, condition='choice').",
                step=here)
        if foreach is not None or not isinstance(condition, str):
            raise InvalidNextError(
                f"Step {here!r}: a switch takes condition= as the artifact's name (a string), "
                f"and cannot be combined with foreach=.", step=here)
        try:
            value = getattr(self, condition)
        except AttributeError:
            raise InvalidNextError(
                f"Step {here!r}: the switch's condition self.{condition} does not exist. Set "
                f"self.{condition} in this step, before self.next().", step=here) from None
        cases = steps[0]
        try:
            return cases[value]
        except (KeyError, TypeError):
            raise InvalidNextError(
                f"Step {here!r}: the switch's condition self.{condition} is {value!r}, which "
                f"is none of its cases {list(cases)}. Set self.{condition} to one of them.",
                step=here) from None

    def merge_artifacts(self, inputs: "Inputs", exclude: list[str] | None = None,
                        include: list[str] | None = None) -> None:
        """Carry artifacts from the join's inputs into this step, as Metaflow does: values
        that agree across inputs pass down (by reference, nothing is loaded); a conflicting
        value is an error naming the artifact, unless it is set in this step or excluded."""
        from .runtime.merge import merge_artifacts

        merge_artifacts(self, inputs, include=include, exclude=exclude)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """(name, value) of every artifact this instance holds or inherits."""
        state = state_of(self)
        names = set(state.view) if state is not None else set()
        names.update(k for k, v in self.__dict__.items()
                     if not k.startswith("_") and is_artifact_value(v))
        names = {k for k in names if not k.startswith("_")}  # hidden as the client hides them
        for name in sorted(names):
            yield name, getattr(self, name)


def _step_name(here: str, target) -> str:
    func = getattr(target, "__func__", target)
    if not getattr(func, "is_step", False):
        raise InvalidNextError(
            f"Step {here!r}: self.next() takes steps like self.a, got {target!r}.", step=here)
    return func.__name__


class Inputs:
    """The inputs of a join: a sequence of read-only flow views, one per parent task, also
    reachable by step name after a static branch (`inputs.a.x`). Views are built lazily so
    that a join over 100,000 splits loads nothing until an input is touched."""

    def __init__(self, step_names: list[str], make_input: Callable[[int], FlowSpec]):
        self._steps = list(step_names)
        self._make = make_input
        self._cache: dict[int, FlowSpec] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def __getitem__(self, i: int) -> FlowSpec:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"join has {len(self)} inputs; index {i} is out of range")
        view = self._cache.get(i)
        if view is None:
            view = self._make(i)
            if len(self._cache) < 1024:  # keep memory bounded on wide joins
                self._cache[i] = view
        return view

    def __iter__(self) -> Iterator[FlowSpec]:
        for i in range(len(self)):
            yield self[i]

    def __getattr__(self, name: str) -> FlowSpec:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._steps:
            return self[self._steps.index(name)]
        raise AttributeError(
            f"This join has no input from step {name!r}; its inputs come from "
            f"{sorted(set(self._steps))}.")


__all__ = ["FlowSpec", "step", "Inputs", "StepException", "Parameter", "RayflowException",
           "MergeArtifactsError"]
