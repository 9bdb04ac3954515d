"""`MutableStep` (Metaflow's): what a StepMutator (or a FlowMutator, through
`mutable_flow.steps`) sees of one step, to read and change its decorators."""

from __future__ import annotations

from .common import (
    ERROR,
    IGNORE,
    OVERRIDE,
    MutatorError,
    current_configs,
    find_class,
    parse_spec_args,
    short_name,
    split_spec,
    step_decorator_funcs,
)
from .user_step_decorator import StepMutator, UserStepDecoratorBase


class MutableStep:
    IGNORE = IGNORE
    ERROR = ERROR
    OVERRIDE = OVERRIDE

    def __init__(self, flow_spec, step, pre_mutate: bool = False,
                 statically_defined: bool = False, inserted_by=None):
        from .mutable_flow import MutableFlow

        if inserted_by is None:
            raise MutatorError("A MutableStep is made by rayflow for a StepMutator or a "
                               "FlowMutator; it cannot be made without one (inserted_by).")
        self._mutable_container = MutableFlow(flow_spec, pre_mutate=pre_mutate,
                                              statically_defined=statically_defined,
                                              inserted_by=inserted_by)
        self._flow_cls = flow_spec
        self._my_step = step
        self._pre_mutate = pre_mutate
        self._statically_defined = statically_defined
        self._inserted_by = inserted_by
        for field in ("decorators", "wrappers", "config_decorators"):
            if not isinstance(getattr(step, field, None), list):
                setattr(step, field, [])

    @property
    def flow(self):
        return self._mutable_container

    @property
    def name(self) -> str:
        return self._my_step.__name__

    def _by(self) -> str:
        return " from ".join(self._inserted_by) if isinstance(self._inserted_by, list) \
            else str(self._inserted_by)

    @property
    def decorator_specs(self):
        """(short name, full name, args, kwargs) of each decorator of the step."""
        for deco in self._my_step.decorators:
            attrs = getattr(deco, "attributes", None)
            if attrs is None:
                attrs = getattr(deco, "raw", {})
            yield (deco.name, f"{type(deco).__module__}.{type(deco).__name__}", [],
                   dict(attrs))
        seen: set[int] = set()
        for deco in [*self._my_step.wrappers, *self._my_step.config_decorators]:
            if id(deco) in seen:
                continue
            seen.add(id(deco))
            args, kwargs = deco.get_args_kwargs()
            yield (short_name(UserStepDecoratorBase, type(deco)), deco.decorator_name,
                   args, kwargs)

    @staticmethod
    def _match_name(deco_name: str, deco_fq: str, query: str) -> bool:
        return deco_fq == query if "." in query else deco_name == query

    def has_decorator(self, name: str) -> bool:
        return any(self._match_name(n, fq, name) for n, fq, _, _ in self.decorator_specs)

    def get_decorator_specs(self, name: str) -> list[tuple[str, str, list, dict]]:
        return [(n, fq, list(a), dict(k)) for n, fq, a, k in self.decorator_specs
                if self._match_name(n, fq, name)]

    # -- adding --------------------------------------------------------------------------------
    def add_decorator(self, deco_type, deco_args: list | None = None,
                      deco_kwargs: dict | None = None, duplicates: int = IGNORE):
        """Add a step decorator (`environment`, `"retry:times=2"`) or a user step decorator /
        StepMutator (its class or its name, `"MyMutator:arg=1"`). Returns what was added, or
        None when a decorator of the same kind was kept (duplicates=IGNORE, the default)."""
        deco_args, deco_kwargs = list(deco_args or []), dict(deco_kwargs or {})
        if isinstance(deco_type, str):
            name, text = split_spec(deco_type)
            spec_args, spec_kwargs = parse_spec_args(text)
            if (spec_args or spec_kwargs) and (deco_args or deco_kwargs):
                raise MutatorError(f"add_decorator({deco_type!r}) from {self._by()}: give the "
                                   "arguments in the string or in deco_args/deco_kwargs, not "
                                   "both.")
            deco_args, deco_kwargs = (spec_args, spec_kwargs) if text.strip() else \
                (deco_args, deco_kwargs)
            deco_type = self._lookup(name, deco_type)
        if isinstance(deco_type, type) and issubclass(deco_type, UserStepDecoratorBase):
            return self._add_user(deco_type, deco_args, deco_kwargs, duplicates)
        builtin = getattr(deco_type, "_rf_step_decorator", None)
        if builtin is None:
            raise MutatorError(f"add_decorator from {self._by()} takes a step decorator (such "
                               f"as environment or retry), a UserStepDecorator or StepMutator "
                               f"class, or a name; got {deco_type!r}.")
        if deco_args:
            raise MutatorError(f"add_decorator(@{builtin[1]}) from {self._by()}: step "
                               "decorators take keyword arguments (deco_kwargs) only.")
        return self._add_builtin(builtin[0], builtin[1], deco_kwargs, duplicates)

    def _lookup(self, name: str, spec: str):
        builtin = step_decorator_funcs().get(name)
        if builtin is not None:
            return builtin
        found = find_class(UserStepDecoratorBase, name, getattr(self._flow_cls, "__module__",
                                                                 None))
        if found is None:
            from .common import known_names

            known = sorted(step_decorator_funcs()) + known_names(UserStepDecoratorBase)
            raise MutatorError(f"add_decorator({spec!r}) from {self._by()} on step "
                               f"{self.name!r}: no step decorator, UserStepDecorator or "
                               f"StepMutator is named {name!r}. Known: {', '.join(known)}. "
                               "Define or import it in the flow's file.")
        return found

    def _add_user(self, deco_cls, args, kwargs, duplicates):
        if not self._pre_mutate and issubclass(deco_cls, StepMutator):
            raise MutatorError(f"Adding step mutator {deco_cls.decorator_name!r} from "
                               f"{self._by()} is only allowed in the `pre_mutate` method, not "
                               "in `mutate`.")
        deco = deco_cls(*args, **kwargs)
        added = deco.add_or_raise(self._my_step, self._statically_defined, duplicates,
                                  self._inserted_by)
        if added is not None:
            added.external_init()
        return added

    def _add_builtin(self, cls, name: str, kwargs: dict, duplicates: int):
        from ..decorators import build_step_decorator

        deco = build_step_decorator(cls, name, kwargs, current_configs())
        deco.statically_defined = self._statically_defined
        deco.inserted_by = self._inserted_by
        step = self._my_step
        existing = [d for d in step.decorators if d.name == name]
        if existing and not getattr(deco, "allow_multiple", False):
            if duplicates == ERROR and self._statically_defined:
                raise MutatorError(f"Step {self.name!r} already has @{name}; {self._by()} "
                                   "cannot add another (duplicates=ERROR). Use IGNORE or "
                                   "OVERRIDE.")
            if duplicates in (IGNORE, ERROR):
                return None
            if duplicates != OVERRIDE:
                raise MutatorError(f"duplicates={duplicates!r}: use MutableStep.IGNORE, ERROR "
                                   "or OVERRIDE.")
            step.decorators = [d for d in step.decorators if d.name != name]
        step.decorators.append(deco)
        return deco

    # -- removing ------------------------------------------------------------------------------
    def remove_decorator(self, deco_name: str, deco_args: list | None = None,
                         deco_kwargs: dict | None = None) -> bool:
        """Remove the decorators named `deco_name` (all of them, or those whose arguments
        are `deco_args`/`deco_kwargs`). True if one was removed."""
        do_all = deco_args is None and deco_kwargs is None
        wanted = (list(deco_args or []), dict(deco_kwargs or {}))
        user_cls = None if deco_name in step_decorator_funcs() else find_class(
            UserStepDecoratorBase, deco_name, getattr(self._flow_cls, "__module__", None))
        if user_cls is not None:
            return self._remove_user(user_cls, do_all, wanted)
        step, kept, removed = self._my_step, [], False
        for deco in step.decorators:
            attrs = getattr(deco, "attributes", getattr(deco, "raw", {}))
            if deco.name == deco_name and (do_all or ([], dict(attrs)) == wanted):
                removed = True
            else:
                kept.append(deco)
        step.decorators = kept
        return removed

    def _remove_user(self, user_cls, do_all: bool, wanted) -> bool:
        removed = False
        for field in ("config_decorators", "wrappers"):
            kept = []
            for deco in getattr(self._my_step, field):
                match = deco.decorator_name == user_cls.decorator_name and (
                    do_all or deco.get_args_kwargs() == wanted)
                if match and not self._pre_mutate and isinstance(deco, StepMutator):
                    raise MutatorError(f"Removing step mutator {deco.decorator_name!r} from "
                                       f"{self._by()} is only allowed in the `pre_mutate` "
                                       "method, not in `mutate`.")
                removed = removed or match
                if not match:
                    kept.append(deco)
            setattr(self._my_step, field, kept)
        return removed

    def __repr__(self) -> str:
        return f"MutableStep({self.name!r})"
