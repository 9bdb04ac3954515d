"""`MutableFlow` (Metaflow's): what a FlowMutator sees of the flow. It reads the configs (their
values are known), parameters, steps and flow decorators; in `pre_mutate` it may add or remove
parameters, flow decorators and FlowMutators. `mutable_flow.<step>` is a MutableStep."""

from __future__ import annotations

from .common import (
    ERROR,
    IGNORE,
    OVERRIDE,
    MutatorError,
    find_class,
    flow_decorator_funcs,
    known_names,
    parse_spec_args,
    short_name,
    split_spec,
)
from .user_flow_decorator import OWN_KEY, FlowMutator, flow_mutators_of

RUN_KEY = "_rf_mutators_run"  # on a mutated class: the mutators being run, in order


def step_functions(flow_cls) -> list[tuple[str, object]]:
    """(name, function) of every step of the class, in source order."""
    import inspect

    found = []
    for name in dir(flow_cls):
        value = inspect.getattr_static(flow_cls, name, None)  # never runs a property's code
        if callable(value) and getattr(value, "is_step", False) is True:
            code = getattr(value, "__code__", None)
            found.append(((code.co_filename, code.co_firstlineno) if code else ("", 0),
                          name, value))
    return [(name, func) for _, name, func in sorted(found, key=lambda t: (t[0], t[1]))]


class MutableFlow:
    IGNORE = IGNORE
    ERROR = ERROR
    OVERRIDE = OVERRIDE

    def __init__(self, flow_spec, pre_mutate: bool = False, statically_defined: bool = False,
                 inserted_by=None):
        if inserted_by is None:
            raise MutatorError("A MutableFlow is made by rayflow for a FlowMutator or a "
                               "StepMutator; it cannot be made without one (inserted_by).")
        self._flow_cls = flow_spec
        self._pre_mutate = pre_mutate
        self._statically_defined = statically_defined
        self._inserted_by = inserted_by

    def _by(self) -> str:
        return " from ".join(self._inserted_by) if isinstance(self._inserted_by, list) \
            else str(self._inserted_by)

    def _only_in_pre_mutate(self, what: str) -> None:
        if not self._pre_mutate:
            raise MutatorError(f"{what} from {self._by()} is only allowed in the `pre_mutate` "
                               "method, not in `mutate`.")

    # -- reading -------------------------------------------------------------------------------
    @property
    def configs(self):
        """(name, value) of each Config of the flow, with the run's values."""
        from ..config import as_config_value, config_values_of, flow_configs

        values = config_values_of(self._flow_cls)
        for config in flow_configs(self._flow_cls):
            yield config.name, as_config_value(values.get(config.name), config.plain)

    @property
    def parameters(self):
        """(attribute name, Parameter) of each Parameter of the flow (not the configs)."""
        from ..parameters import flow_parameters

        for param in flow_parameters(self._flow_cls):
            yield param.attr_name or param.name, param

    @property
    def steps(self):
        """(name, MutableStep) of each step, in source order."""
        from .mutable_step import MutableStep

        for name, func in step_functions(self._flow_cls):
            yield name, MutableStep(self._flow_cls, func, pre_mutate=self._pre_mutate,
                                    statically_defined=self._statically_defined,
                                    inserted_by=self._inserted_by)

    @property
    def decorator_specs(self):
        """(short name, full name, args, kwargs) of each flow decorator and FlowMutator."""
        from ..decorators import flow_decorator_records

        for rec in flow_decorator_records(self._flow_cls):
            yield rec.name, f"rayflow.{rec.name}", [], dict(rec.attributes)
        for m in self._mutators():
            yield (short_name(FlowMutator, type(m)), m.decorator_name, list(m._args),
                   dict(m._kwargs))

    @staticmethod
    def _match_name(deco_name: str, deco_fq: str, query: str) -> bool:
        return deco_fq == query if "." in query else deco_name == query

    def has_decorator(self, name: str) -> bool:
        return any(self._match_name(n, fq, name) for n, fq, _, _ in self.decorator_specs)

    def get_decorator_specs(self, name: str) -> list[tuple[str, str, list, dict]]:
        return [(n, fq, list(a), dict(k)) for n, fq, a, k in self.decorator_specs
                if self._match_name(n, fq, name)]

    def _mutators(self) -> list:
        run = self._flow_cls.__dict__.get(RUN_KEY)
        return run if run is not None else flow_mutators_of(self._flow_cls)

    # -- parameters ----------------------------------------------------------------------------
    def add_parameter(self, name: str, value, overwrite: bool = False) -> None:
        """Add a Parameter (or IncludeFile) as the class attribute `name`."""
        from ..parameters import Parameter, forget_flow_caches

        self._only_in_pre_mutate(f"Adding parameter {name!r}")
        if hasattr(self._flow_cls, name) and not overwrite:
            raise MutatorError(f"{self._by()}: flow {self._flow_cls.__name__} already has a "
                               f"member {name!r}; pass overwrite=True to add_parameter to "
                               "replace it.")
        if not isinstance(value, Parameter) or getattr(value, "IS_CONFIG_PARAMETER", False):
            raise MutatorError(f"{self._by()}: add_parameter({name!r}, ...) takes a Parameter "
                               f"or an IncludeFile, not {type(value).__name__}.")
        type.__setattr__(self._flow_cls, name, value)
        value.__set_name__(self._flow_cls, name)
        forget_flow_caches(self._flow_cls)

    def remove_parameter(self, parameter_name: str) -> bool:
        """Remove the Parameter named `parameter_name`; True if there was one."""
        from ..parameters import REMOVED, forget_flow_caches

        self._only_in_pre_mutate(f"Removing parameter {parameter_name!r}")
        for attr, param in list(self.parameters):
            if param.name == parameter_name:
                type.__setattr__(self._flow_cls, attr, REMOVED)
                forget_flow_caches(self._flow_cls)
                return True
        return False

    # -- flow decorators and mutators ----------------------------------------------------------
    def add_decorator(self, deco_type, deco_args: list | None = None,
                      deco_kwargs: dict | None = None, duplicates: int = IGNORE):
        """Add a flow decorator (`project`, `"project:name=x"`) or a FlowMutator (its class
        or its name, `"MyMutator:arg=1"`); a FlowMutator added here runs its pre_mutate after
        the ones already there. Returns what was added, or None when one of the same kind was
        kept."""
        what = deco_type if isinstance(deco_type, str) else \
            getattr(deco_type, "__name__", deco_type)
        self._only_in_pre_mutate(f"Adding flow decorator {what!r}")
        deco_args, deco_kwargs = list(deco_args or []), dict(deco_kwargs or {})
        if isinstance(deco_type, str):
            name, text = split_spec(deco_type)
            spec_args, spec_kwargs = parse_spec_args(text)
            if (spec_args or spec_kwargs) and (deco_args or deco_kwargs):
                raise MutatorError(f"add_decorator({deco_type!r}) from {self._by()}: give the "
                                   "arguments in the string or in deco_args/deco_kwargs, not "
                                   "both.")
            if text.strip():
                deco_args, deco_kwargs = spec_args, spec_kwargs
            deco_type = self._lookup(name, deco_type)
        if isinstance(deco_type, FlowMutator):
            return self._add_mutator(deco_type, duplicates)
        if isinstance(deco_type, type) and issubclass(deco_type, FlowMutator):
            return self._add_mutator(deco_type(*deco_args, **deco_kwargs), duplicates)
        name = getattr(deco_type, "_rf_flow_decorator", None)
        if name is None:
            raise MutatorError(f"add_decorator from {self._by()} takes a flow decorator (such "
                               f"as project), a FlowMutator class or a name; got {deco_type!r}.")
        if deco_args:
            raise MutatorError(f"add_decorator(@{name}) from {self._by()}: flow decorators "
                               "take keyword arguments (deco_kwargs) only.")
        return self._add_flow_decorator(name, deco_kwargs, duplicates)

    def _lookup(self, name: str, spec: str):
        funcs = flow_decorator_funcs()
        if name in funcs:
            return funcs[name]
        found = find_class(FlowMutator, name, self._flow_cls.__module__)
        if found is None:
            known = sorted(funcs) + known_names(FlowMutator)
            raise MutatorError(f"add_decorator({spec!r}) from {self._by()}: no flow decorator "
                               f"or FlowMutator is named {name!r}. Known: {', '.join(known)}. "
                               "Define or import it in the flow's file.")
        return found

    def _add_mutator(self, mutator: FlowMutator, duplicates: int):
        mutator.statically_defined = self._statically_defined
        mutator.inserted_by = self._inserted_by
        mutator._flow_cls = self._flow_cls
        run = self._flow_cls.__dict__.get(RUN_KEY)
        if run is None:  # not a flow being prepared: the class's own list
            run = self._flow_cls.__dict__.get(OWN_KEY)
            if run is None:
                run = []
                type.__setattr__(self._flow_cls, OWN_KEY, run)
        existing = [m for m in run if m.decorator_name == mutator.decorator_name]
        if existing:
            if duplicates == ERROR and self._statically_defined:
                raise MutatorError(f"Flow {self._flow_cls.__name__} already has FlowMutator "
                                   f"{mutator.decorator_name}; {self._by()} cannot add another "
                                   "(duplicates=ERROR).")
            if duplicates != OVERRIDE:
                return None
            run[:] = [m for m in run if m.decorator_name != mutator.decorator_name]
        mutator.external_init()
        run.append(mutator)
        return mutator

    def _add_flow_decorator(self, name: str, kwargs: dict, duplicates: int):
        from ..decorators import flow_decorator_records

        existing = [r for r in flow_decorator_records(self._flow_cls) if r.name == name]
        if existing:
            if duplicates == ERROR and self._statically_defined:
                raise MutatorError(f"Flow {self._flow_cls.__name__} already has @{name}; "
                                   f"{self._by()} cannot add another (duplicates=ERROR).")
            if duplicates != OVERRIDE:
                return None
            self.remove_decorator(name)
        flow_decorator_funcs()[name](**kwargs)(self._flow_cls)
        rec = flow_decorator_records(self._flow_cls)[-1]
        rec.statically_defined, rec.inserted_by = self._statically_defined, self._inserted_by
        return rec

    def remove_decorator(self, deco_name: str, deco_args: list | None = None,
                         deco_kwargs: dict | None = None) -> bool:
        """Remove the flow decorators named `deco_name` (all, or those with these
        arguments). FlowMutators cannot be removed. True if one was removed."""
        from ..decorators import FLOW_DECOS_ALL_KEY, flow_decorator_records

        self._only_in_pre_mutate(f"Removing flow decorator {deco_name!r}")
        for m in self._mutators():
            if self._match_name(short_name(FlowMutator, type(m)), m.decorator_name, deco_name):
                raise MutatorError(f"{self._by()}: FlowMutator {deco_name!r} cannot be "
                                   "removed; only flow decorators (such as @project) can.")
        records = flow_decorator_records(self._flow_cls)
        wanted = (list(deco_args or []), dict(deco_kwargs or {}))
        do_all = deco_args is None and deco_kwargs is None
        kept = [r for r in records if not (r.name == deco_name and (
            do_all or r.get_args_kwargs() == wanted))]
        if len(kept) == len(records):
            return False
        type.__setattr__(self._flow_cls, FLOW_DECOS_ALL_KEY, kept)
        if deco_name == "project" and not any(r.name == "project" for r in kept):
            type.__setattr__(self._flow_cls, "_rf_project", None)
        return True

    def __getattr__(self, name: str):
        from ..config import Config
        from ..parameters import Parameter
        from .mutable_step import MutableStep

        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._flow_cls, name, None)
        if callable(attr) and getattr(attr, "is_step", False) is True:
            return MutableStep(self._flow_cls, attr, pre_mutate=self._pre_mutate,
                               statically_defined=self._statically_defined,
                               inserted_by=self._inserted_by)
        if isinstance(attr, Config):
            return dict(self.configs).get(attr.name)
        if isinstance(attr, Parameter):
            return attr
        raise AttributeError(f"Flow {self._flow_cls.__name__} has no step, parameter or config "
                             f"{name!r}.")

    def __repr__(self) -> str:
        return f"MutableFlow({self._flow_cls.__name__})"
