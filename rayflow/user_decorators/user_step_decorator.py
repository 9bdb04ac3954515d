"""User step decorators (Metaflow 2.16+): `UserStepDecorator`, `@user_step_decorator`, and
`StepMutator`, at Metaflow's module path.

A `UserStepDecorator` wraps a step: `pre_step` runs before it (and may return a function to
run instead, or set `skip_step`), `post_step` after it (it sees the step's exception and may
swallow or replace it, or say how to call `self.next`). `@user_step_decorator` makes one from
a generator function that yields once where the step runs. A `StepMutator` changes the step's
decorators before the run starts (`pre_mutate`, then `mutate`, with a `MutableStep`).

Either is used above `@step`, bare (`@my_deco`) or called (`@my_deco(arg=1)`); both forms
leave the step function itself in the class, with the decorator in its `wrappers` or
`config_decorators` list.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable

from .common import (
    ERROR,
    IGNORE,
    OVERRIDE,
    MutatorError,
    make_spec,
    module_file,
    parse_spec_args,
    register_class,
    resolve_args,
)

USER_SKIP_STEP: dict = {}  # yield it (or set skip_step) to skip the step


def _is_step(obj) -> bool:
    return callable(obj) and getattr(obj, "is_step", False) is True


def _looks_like_method(obj) -> bool:
    if not isinstance(obj, types.FunctionType):
        return False
    params = list(inspect.signature(obj).parameters)
    return bool(params) and params[0] == "self"


class UserStepDecoratorBase:
    _rf_abstract = _rf_framework = True
    _step_field: str | None = None
    _allowed_args = False
    _allowed_kwargs = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.decorator_name = cls.__dict__.get("_decorator_name") or \
            f"{cls.__module__}.{cls.__name__}"
        origin = cls.__dict__.get("_rf_origin_of")
        if origin is not None:
            register_class(cls, origin.__code__.co_filename, origin.__qualname__)
        else:
            register_class(cls, module_file(cls.__module__), cls.__qualname__)

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        if args and isinstance(args[0], UserStepDecoratorBase):
            args = (args[0]._my_step, *args[1:])
        if args and _is_step(args[0]):  # bare: @my_deco above @step
            self.__init__(*args[1:], **kwargs)
            return self._attach(args[0])
        return self

    def __init__(self, *args, **kwargs):
        self._special_kwargs = {"_statically_defined": True, "_inserted_by": None}
        for key in ("_statically_defined", "_inserted_by"):
            if key in kwargs:
                self._special_kwargs[key] = kwargs.pop(key)
        if args and isinstance(args[0], type) and any(
                k.__name__ == "FlowSpec" for k in args[0].__mro__):
            raise MutatorError(f"@{self._name()} is a step decorator: put it above @step, not "
                               f"on the flow class {args[0].__name__}.")
        if args and _looks_like_method(args[0]) and not _is_step(args[0]):
            raise MutatorError(f"@{self._name()} is applied to {args[0].__name__!r}, which is "
                               f"not a step. Put @{self._name()} above @step.")
        self._args, self._kwargs = tuple(args), dict(kwargs)
        self._ran_init = False
        self._my_step = None
        self.statically_defined, self.inserted_by = True, None
        if self._args and not self._allowed_args:
            raise MutatorError(f"@{self._name()} takes no positional arguments (got "
                               f"{list(self._args)!r}); pass keyword arguments.")
        if self._kwargs and not self._allowed_kwargs:
            raise MutatorError(f"@{self._name()} takes no arguments.")

    def _name(self) -> str:
        return type(self).decorator_name.rpartition(".")[2]

    def __call__(self, step=None, **kwargs):
        self._special_kwargs.update(kwargs)
        if isinstance(step, UserStepDecoratorBase):
            step = step._my_step
        if step is None or not _is_step(step):
            what = getattr(step, "__name__", step)
            raise MutatorError(f"@{self._name()} can only be applied to a step; it was "
                               f"applied to {what!r}. Put @{self._name()} above @step.")
        return self._attach(step)

    def _attach(self, step):
        self._my_step = step
        self.statically_defined = self._special_kwargs["_statically_defined"]
        self.inserted_by = self._special_kwargs["_inserted_by"]
        for field in self._all_step_fields():
            if not isinstance(getattr(step, field, None), list):
                setattr(step, field, [])
            getattr(step, field).append(self)
        return step

    @classmethod
    def _all_step_fields(cls) -> list[str]:
        fields: list[str] = []
        for klass in cls.__mro__:
            field = klass.__dict__.get("_step_field")
            if field is not None and field not in fields:
                fields.append(field)
        return fields

    def add_or_raise(self, step, statically_defined: bool, duplicates: int,
                     inserted_by=None):
        """Put this decorator on `step` by the duplicates policy: self if it was added,
        None if an existing one of the same kind was kept."""
        existing = [d for d in getattr(step, self._all_step_fields()[0], [])
                    if d.decorator_name == self.decorator_name]
        if existing and duplicates == ERROR and statically_defined:
            raise MutatorError(f"Step {step.__name__!r} already has @{self._name()}; it cannot "
                               f"be added again (duplicates=ERROR). Use IGNORE or OVERRIDE.")
        if existing and duplicates in (IGNORE, ERROR):
            return None
        if existing and duplicates == OVERRIDE:
            for field in self._all_step_fields():
                setattr(step, field, [d for d in getattr(step, field, [])
                                      if d.decorator_name != self.decorator_name])
        elif existing:
            raise MutatorError(f"duplicates={duplicates!r}: use MutableStep.IGNORE, ERROR or "
                               "OVERRIDE.")
        self(step, _statically_defined=statically_defined, _inserted_by=inserted_by)
        return self

    # -- arguments -----------------------------------------------------------------------------
    @classmethod
    def extract_args_kwargs_from_decorator_spec(cls, deco_spec: str):
        return parse_spec_args(deco_spec)

    @classmethod
    def parse_decorator_spec(cls, deco_spec: str):
        args, kwargs = parse_spec_args(deco_spec)
        return cls(*args, **kwargs)

    def make_decorator_spec(self) -> str:
        self.external_init()
        return make_spec(self.decorator_name, self._args, self._kwargs)

    def get_args_kwargs(self) -> tuple[list, dict]:
        return list(self._args), dict(self._kwargs)

    def init(self, *args, **kwargs):
        pass

    def external_init(self):
        """Evaluate config expressions in the arguments and call `init` with them (once)."""
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

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.decorator_name})"


class UserStepDecorator(UserStepDecoratorBase):
    """Derive from it and define `pre_step` and/or `post_step` (and `init` for arguments)."""

    _rf_abstract = _rf_framework = True
    _step_field = "wrappers"
    _allowed_args = False
    _allowed_kwargs = True

    def pre_step(self, step_name: str, flow, inputs=None) -> Callable | None:
        """Before the step. Return None to run it, or a function (taking the flow, and the
        inputs in a join) to run instead."""
        return None

    def post_step(self, step_name: str, flow, exception: Exception | None = None):
        """After the step: return an exception to raise (None: success), or a pair
        (exception, arguments of self.next: None to keep the step's own call, {} to call it
        with the step's usual targets, or a dict of self.next's keyword arguments)."""
        if exception:
            return exception, None
        return None, None

    @property
    def skip_step(self):
        """False, or True / a dict of self.next's arguments to skip the step."""
        return getattr(self, "_skip_step", False)

    @skip_step.setter
    def skip_step(self, value) -> None:
        self._skip_step = value


def user_step_decorator(*args, **kwargs):
    """Turn a generator function `(step_name, flow, inputs[, attributes])` into a step
    decorator. It yields once: where it yields, the step runs (yield a function to run that
    instead, or a dict such as USER_SKIP_STEP to skip the step); what follows the yield runs
    after the step and may catch its exception."""
    if not args:
        return lambda f: user_step_decorator(f, **kwargs)
    func = args[0]
    if not isinstance(func, types.FunctionType) or not inspect.isgeneratorfunction(func):
        raise MutatorError(f"@user_step_decorator decorates a generator function (one that "
                           f"yields once); {getattr(func, '__name__', func)!r} is not one.")
    arg_count = len(inspect.signature(func).parameters)
    if arg_count not in (3, 4) or (kwargs and arg_count != 4):
        raise MutatorError(f"@user_step_decorator: {func.__name__} must take (step_name, flow, "
                           f"inputs) or (step_name, flow, inputs, attributes); it takes "
                           f"{arg_count} arguments.")
    return types.new_class(func.__name__, (_GeneratorDecorator,), {}, lambda ns: ns.update(
        _decorator_name=f"{func.__module__}.{func.__name__}", _rf_origin_of=func,
        _rf_generator=staticmethod(func), _rf_arg_count=arg_count, __doc__=func.__doc__,
        __module__=func.__module__, __qualname__=func.__qualname__))


class _GeneratorDecorator(UserStepDecorator):
    """A UserStepDecorator made by @user_step_decorator from a generator function."""

    _rf_abstract = True
    _rf_generator: Callable
    _rf_arg_count = 3

    def init(self, *args, **kwargs):
        if args:
            raise MutatorError(f"@{self._name()} takes keyword arguments only.")
        self._kwargs = kwargs

    def pre_step(self, step_name, flow, inputs=None):
        gen_args = (step_name, flow, inputs) + ((self._kwargs,) if self._rf_arg_count == 4
                                                else ())
        self._live = self._rf_generator(*gen_args)
        try:
            value = self._live.send(None)
        except StopIteration:  # it never yields: the step does not run
            self.skip_step = True
            return None
        if isinstance(value, dict):
            self.skip_step = value if value else True
            return None
        return value

    def post_step(self, step_name, flow, exception=None):
        try:
            if exception is not None:
                self._live.throw(exception)
            else:
                self._live.send(None)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:  # noqa: BLE001 - the generator re-raised or raised anew
            return exc
        return (None, None, MutatorError(f"@{self._name()} yields more than once; a "
                                         "@user_step_decorator generator yields once."))


class StepMutator(UserStepDecoratorBase):
    """Derive from it to change a step's decorators before the run: `pre_mutate` runs once
    the configs are known, `mutate` after the command line (`--with`) is applied."""

    _rf_abstract = _rf_framework = True
    _step_field = "config_decorators"
    _allowed_args = True
    _allowed_kwargs = True

    def pre_mutate(self, mutable_step) -> None:
        return None

    def mutate(self, mutable_step) -> None:
        return None

    def add_to_package(self):
        return []


def wrappers_of(step) -> list[Any]:
    return list(getattr(step, "wrappers", None) or ())
