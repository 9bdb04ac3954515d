"""FlowSpec and @step: the user-facing shape of a flow, with Metaflow's names and meaning.

A FlowSpec instance lives for one task, inside a Ray worker. Artifacts it inherits are not
loaded up front: attribute access loads them lazily from the Ray object store (or, on resume,
from the datastore), so a split that never touches the parent's list never copies it. Whatever
the step assigns to `self.<name>` becomes an artifact of this task. This module never imports
ray; loading goes through a callable the runtime provides.
"""

from __future__ import annotations

import sys
import traceback as tb
from typing import Any, Callable, Iterator

from .exceptions import InvalidNextError, MergeArtifactsError, RayflowException
from .parameters import Parameter

# Names a step may not use for itself or for an artifact: FlowSpec's own API.
RESERVED_NAMES = frozenset({
    "next", "input", "index", "foreach_stack", "merge_artifacts", "name", "script_name",
    "cmd", "run", "show", "check", "resume", "inputs",
})


def step(func: Callable) -> Callable:
    """Mark a method as a step of the flow. Other step decorators go above it."""
    func.is_step = True
    func.decorators = []
    func.name = func.__name__
    return func


class StepException:
    """An exception caught by @catch, stored as an artifact. Picklable even when the original
    exception is not: it keeps the type name, the message and the formatted traceback."""

    def __init__(self, exc: BaseException):
        self.type = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.exception = str(exc)
        self.stacktrace = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))

    def __str__(self) -> str:
        return f"{self.type}: {self.exception}"

    def __repr__(self) -> str:
        return f"StepException({self.type}: {self.exception!r})"


class FlowSpec:
    """Base class of every flow. Subclass it, add @step methods, and call `MyFlow()` under
    `if __name__ == "__main__":` so that `python flow.py run` works as in Metaflow."""

    def __init__(self, use_cli: bool = True):
        if use_cli:
            from rayflow_cli.main import main_for_flow

            main_for_flow(type(self))

    # ----------------------------------------------------------------- set-up by the runtime
    def _rf_setup(self, *, params: dict, view: dict, loader: Callable, step_name: str,
                  foreach_stack: list, input_loader: Callable | None = None) -> None:
        """Prepare a fresh instance for one task. `view` maps inherited artifact names to
        locations that `loader(location)` turns into values."""
        d = self.__dict__
        d["_rf_params"] = params
        d["_rf_view"] = dict(view)
        d["_rf_loader"] = loader
        d["_rf_loaded"] = {}
        d["_rf_step"] = step_name
        d["_rf_transition"] = None
        d["_rf_foreach_stack"] = foreach_stack
        d["_rf_input_loader"] = input_loader

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: an inherited artifact not loaded yet.
        if name.startswith("_"):
            raise AttributeError(name)
        view = self.__dict__.get("_rf_view")
        if view is None or name not in view:
            step_name = self.__dict__.get("_rf_step", "?")
            raise AttributeError(
                f"Flow {type(self).__name__} has no artifact {name!r} in step {step_name!r}. "
                f"Set self.{name} in an earlier step (in a join, use merge_artifacts or read "
                f"it from inputs)."
            )
        loc = view[name]
        value = self.__dict__["_rf_loader"](loc)
        self.__dict__[name] = value
        self.__dict__["_rf_loaded"][name] = (loc, id(value))
        sink = self.__dict__.get("_rf_read_sink")
        if sink is not None:  # an input of a join: the join's lineage records the read
            sink(name, loc.sha)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in RESERVED_NAMES:
            raise AttributeError(
                f"{name!r} is a reserved name in a flow; pick another artifact name.")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__.pop(name, None)
        view = self.__dict__.get("_rf_view")
        if view is not None:
            view.pop(name, None)

    # ----------------------------------------------------------------------- Metaflow's API
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def script_name(self) -> str:
        import os

        return os.path.basename(sys.modules[type(self).__module__].__file__ or "")

    @property
    def index(self) -> int | None:
        stack = self.__dict__.get("_rf_foreach_stack") or []
        return stack[-1][1] if stack else None

    @property
    def input(self) -> Any:
        """The item of the innermost foreach that this split works on."""
        if "_rf_input_value" in self.__dict__:
            return self.__dict__["_rf_input_value"]
        loader = self.__dict__.get("_rf_input_loader")
        if loader is None:
            return None
        value = loader()
        self.__dict__["_rf_input_value"] = value
        return value

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for each enclosing foreach, outermost first. Only the
        innermost value is loaded; outer values are None (they are not shipped to a split)."""
        stack = self.__dict__.get("_rf_foreach_stack") or []
        out = [(index, num, None) for (_step, index, num) in stack]
        if out:
            out[-1] = (out[-1][0], out[-1][1], self.input)
        return out

    def next(self, *steps: Callable, foreach: str | None = None, **kwargs) -> None:
        """Declare the step(s) that run after this one. `foreach="var"` fans out over var."""
        here = self.__dict__.get("_rf_step", "?")
        if kwargs:
            raise InvalidNextError(
                f"Step {here!r}: self.next() got unsupported arguments {sorted(kwargs)}; rayflow "
                f"supports self.next(a), self.next(a, b) and self.next(a, foreach='var').",
                step=here)
        if self.__dict__.get("_rf_transition") is not None:
            raise InvalidNextError(
                f"Step {here!r} called self.next() twice. Call it once, as the last line.",
                step=here)
        names = []
        for target in steps:
            func = getattr(target, "__func__", target)
            if not getattr(func, "is_step", False):
                raise InvalidNextError(
                    f"Step {here!r}: self.next() takes steps like self.a, got {target!r}.",
                    step=here)
            names.append(func.__name__)
        if foreach is not None and not isinstance(foreach, str):
            raise InvalidNextError(
                f"Step {here!r}: foreach= takes the artifact's name as a string, e.g. "
                f"foreach='items'.", step=here)
        self.__dict__["_rf_transition"] = (tuple(names), foreach)

    def merge_artifacts(self, inputs: "Inputs", exclude: list[str] | None = None,
                        include: list[str] | None = None) -> None:
        """Carry artifacts from the join's inputs into this step, as Metaflow does: values
        that agree across inputs pass down (by reference, nothing is loaded); a conflicting
        value is an error naming the artifact, unless it is set in this step or excluded."""
        from .runtime.merge import merge_artifacts

        merge_artifacts(self, inputs, include=include, exclude=exclude)

    def _rf_artifact_names(self) -> list[str]:
        """Names of the artifacts this instance holds or inherits (loaded or not)."""
        names = set(self.__dict__.get("_rf_view", {}))
        names.update(k for k in self.__dict__ if not k.startswith("_"))
        return sorted(names)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for name in self._rf_artifact_names():
            yield name, getattr(self, name)


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
