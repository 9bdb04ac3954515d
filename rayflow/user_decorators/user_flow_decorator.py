"""`FlowMutator` (Metaflow 2.16+), at Metaflow's module path: a class decorator that changes a
flow before it runs, once its configs are known. `pre_mutate` may add or remove parameters,
flow decorators, other FlowMutators and step decorators; `mutate` (after the command line's
`--with`) may change the steps' decorators only.

`@MyMutator` or `@MyMutator(args)` above a FlowSpec class leaves the class itself in place and
notes the mutator on it. A flow inherits its bases' mutators: they run on the flow being run,
nearest base first, then the flow's own, in the order they were applied.
"""

from __future__ import annotations

from .common import (
    MutatorError,
    make_spec,
    module_file,
    parse_spec_args,
    register_class,
    resolve_args,
)

OWN_KEY = "_rf_flow_mutators"


def _is_flow_class(obj) -> bool:
    from ..flowspec import FlowSpec

    return isinstance(obj, type) and issubclass(obj, FlowSpec)


class FlowMutator:
    """Derive from it; define `init(self, ...)` to take arguments, and `pre_mutate` and/or
    `mutate(self, mutable_flow)`."""

    _rf_abstract = _rf_framework = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.decorator_name = cls.__dict__.get("_decorator_name") or \
            f"{cls.__module__}.{cls.__name__}"
        register_class(cls, module_file(cls.__module__), cls.__qualname__)

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if args and isinstance(args[0], FlowMutator):
            args = (args[0]._flow_cls, *args[1:])
        if args and _is_flow_class(args[0]):  # bare: @MyMutator above the class
            self.__init__(*args[1:], **kwargs)
            return self._attach(args[0])
        return self

    def __init__(self, *args, **kwargs):
        if args and getattr(args[0], "is_step", False) is True:
            raise MutatorError(f"@{self._name()} is a FlowMutator: put it above the flow's "
                               f"class, not on the step {args[0].__name__!r}.")
        self._flow_cls = None
        self.statically_defined = True
        self.inserted_by = None
        self._args, self._kwargs = tuple(args), dict(kwargs)
        self._ran_init = False

    def __call__(self, flow_spec=None):
        if isinstance(flow_spec, FlowMutator):
            flow_spec = flow_spec._flow_cls
        if not _is_flow_class(flow_spec):
            what = getattr(flow_spec, "__name__", flow_spec)
            raise MutatorError(f"@{self._name()} is a FlowMutator: it goes above a class that "
                               f"subclasses FlowSpec, not on {what!r}.")
        return self._attach(flow_spec)

    def _attach(self, flow_cls):
        own = flow_cls.__dict__.get(OWN_KEY)
        if own is None:
            own = []
            type.__setattr__(flow_cls, OWN_KEY, own)
        own.append(self)
        self._flow_cls = flow_cls
        return flow_cls

    def _name(self) -> str:
        return type(self).decorator_name.rpartition(".")[2]

    def __str__(self) -> str:
        return f"FlowMutator({self.decorator_name})"

    @classmethod
    def extract_args_kwargs_from_decorator_spec(cls, deco_spec: str):
        return parse_spec_args(deco_spec)

    @classmethod
    def parse_decorator_spec(cls, deco_spec: str) -> "FlowMutator":
        args, kwargs = parse_spec_args(deco_spec)
        return cls(*args, **kwargs)

    def make_decorator_spec(self) -> str:
        return make_spec(self.decorator_name, self._args, self._kwargs)

    def get_args_kwargs(self) -> tuple[list, dict]:
        return list(self._args), dict(self._kwargs)

    def init(self, *args, **kwargs):
        """Define it to take the mutator's arguments: `@MyMutator(a, b=1)`."""

    def external_init(self):
        if self._ran_init:
            return
        self._args, self._kwargs = resolve_args(self._args, self._kwargs)
        has_init = any("init" in k.__dict__ for k in type(self).__mro__
                       if not k.__dict__.get("_rf_framework"))
        if (self._args or self._kwargs) and not has_init:
            raise MutatorError(f"@{self._name()} is given arguments but does not define "
                               "init(self, ...) to take them.")
        if has_init:
            self.init(*self._args, **self._kwargs)
        self._ran_init = True

    def pre_mutate(self, mutable_flow) -> None:
        """Right after the configs are read: add or remove parameters and decorators."""
        return None

    def mutate(self, mutable_flow) -> None:
        """After the command line is parsed: change the steps' decorators only."""
        return None

    def add_to_package(self):
        return []


def flow_mutators_of(flow_cls) -> list[FlowMutator]:
    """The mutators that apply to `flow_cls`: its bases' (nearest first), then its own."""
    out: list[FlowMutator] = []
    for base in flow_cls.__mro__[1:]:
        out.extend(base.__dict__.get(OWN_KEY, ()))
    out.extend(flow_cls.__dict__.get(OWN_KEY, ()))
    return out
