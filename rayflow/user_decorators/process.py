"""Applying a flow's mutators: the same way on the driver and in every worker.

A flow with FlowMutators, StepMutators or user step decorators is prepared per run: once its
configs are known, `mutated_class` makes a subclass of the flow (same name, same module) whose
steps are copies carrying their own decorator lists, and runs on it, in Metaflow's order:

1. every FlowMutator's `init`, then their `pre_mutate` (one added meanwhile runs too);
2. every StepMutator's `init`, then their `pre_mutate`, step by step in source order;
3. the command line's `--with` decorators, on every step that lacks them;
4. every FlowMutator's `mutate`, then every StepMutator's `mutate`;
5. the user step decorators' `init` (their arguments may read the configs).

The flow class itself is never changed, so runs with other configs (a warm worker serves many)
each get their own result. A worker re-imports the flow file and prepares the class again from
the same configs and `--with` specs, so it gets the same decorators and parameters as the
driver (and the mutators' side effects happen in the worker too, as in Metaflow, where each
task re-runs them).
"""

from __future__ import annotations

import copy
import json
import types
from typing import Any

from .common import configs_for_mutators, run_user_hook
from .mutable_flow import RUN_KEY, MutableFlow, step_functions
from .mutable_step import MutableStep
from .user_flow_decorator import flow_mutators_of
from .user_step_decorator import StepMutator

CACHE_KEY = "_rf_mutated_classes"
MAX_CACHED = 16


def has_user_decorators(flow_cls) -> bool:
    if flow_mutators_of(flow_cls):
        return True
    return any(getattr(f, "wrappers", None) or getattr(f, "config_decorators", None)
               for _, f in step_functions(flow_cls))


def is_mutated(flow_cls) -> bool:
    return RUN_KEY in flow_cls.__dict__


def original_class(flow_cls):
    return flow_cls.__dict__.get("_rf_mutated_from", flow_cls)


def mutated_class(flow_cls, configs: dict[str, Any], with_specs=()) -> type:
    """`flow_cls` with its mutators applied for these configs and `--with` specs (cached per
    class); `flow_cls` itself when it has no user decorator or mutator."""
    flow_cls = original_class(flow_cls)
    if not has_user_decorators(flow_cls):
        return flow_cls
    key = (json.dumps(configs, sort_keys=True, default=repr), tuple(with_specs))
    cache = flow_cls.__dict__.get(CACHE_KEY)
    if cache is None:
        cache = {}
        type.__setattr__(flow_cls, CACHE_KEY, cache)
    derived = cache.get(key)
    if derived is None:
        derived = _derive(flow_cls, configs)
        with configs_for_mutators(configs):
            _run_mutators(derived, list(with_specs))
        if len(cache) >= MAX_CACHED:
            cache.pop(next(iter(cache)))
        cache[key] = derived
    return derived


def _derive(flow_cls, configs: dict[str, Any]) -> type:
    from ..config import flow_configs
    from ..decorators import FLOW_DECOS_ALL_KEY, flow_decorator_records

    names = {c.name for c in flow_configs(flow_cls)}
    memo: dict[int, Any] = {}
    ns: dict[str, Any] = {
        "__module__": flow_cls.__module__, "__qualname__": flow_cls.__qualname__,
        "__doc__": flow_cls.__doc__, "_rf_mutated_from": flow_cls,
        "_rf_config_values": {k: v for k, v in configs.items() if k in names},
        RUN_KEY: [_copy_user(m, memo) for m in flow_mutators_of(flow_cls)],
        FLOW_DECOS_ALL_KEY: [copy.copy(r) for r in flow_decorator_records(flow_cls)],
    }
    for name, func in step_functions(flow_cls):
        ns[name] = _copy_step(func, memo, configs)
    return type(flow_cls)(flow_cls.__name__, (flow_cls,), ns)


def _copy_step(func, memo: dict, configs: dict):
    """A copy of a step function with its own decorator lists (and decorators)."""
    from ..decorators import DeferredDecorator

    new = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                             func.__defaults__, func.__closure__)
    new.__dict__.update(func.__dict__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__, new.__doc__, new.__module__ = \
        func.__qualname__, func.__doc__, func.__module__
    new.decorators = [d.build(configs) if isinstance(d, DeferredDecorator) else _copy_deco(d)
                      for d in getattr(func, "decorators", ())]
    new.wrappers = [_copy_user(d, memo) for d in getattr(func, "wrappers", None) or ()]
    new.config_decorators = [_copy_user(d, memo)
                             for d in getattr(func, "config_decorators", None) or ()]
    return new


def _copy_deco(deco):
    new = copy.copy(deco)
    try:
        new.attributes = copy.deepcopy(deco.attributes)
    except Exception:  # noqa: BLE001 - an attribute that cannot be copied: share it
        new.attributes = dict(deco.attributes)
    return new


def _copy_user(deco, memo: dict):
    """One copy per prepared class (the same copy where one decorator is in two lists)."""
    new = memo.get(id(deco))
    if new is None:
        new = memo[id(deco)] = copy.copy(deco)
        new._args, new._kwargs = tuple(deco._args), dict(deco._kwargs)
    return new


def _by(deco) -> list:
    return [deco.decorator_name] + list(deco.inserted_by or [])


def _run_mutators(derived, with_specs: list[str]) -> None:
    mutators = derived.__dict__[RUN_KEY]
    for m in list(mutators):
        run_user_hook(m, "init", m.external_init)
    i = 0
    while i < len(mutators):  # a mutator may add more: they run too
        m = mutators[i]
        flow = MutableFlow(derived, pre_mutate=True, statically_defined=m.statically_defined,
                           inserted_by=_by(m))
        run_user_hook(m, "pre_mutate", lambda m=m, flow=flow: m.pre_mutate(flow))
        i += 1
    steps = [func for _, func in step_functions(derived)]
    for func in steps:
        for d in list(func.config_decorators):
            run_user_hook(d, "init", d.external_init, f" on step {func.__name__!r}")
    for func in steps:
        _each_step_mutator(derived, func, "pre_mutate")
    _attach_with(steps, with_specs)
    for m in list(mutators):
        flow = MutableFlow(derived, pre_mutate=False, statically_defined=m.statically_defined,
                           inserted_by=_by(m))
        run_user_hook(m, "mutate", lambda m=m, flow=flow: m.mutate(flow))
    for func in steps:
        _each_step_mutator(derived, func, "mutate")
    from ..parameters import forget_flow_caches

    forget_flow_caches(derived)
    for func in steps:
        for d in func.wrappers:
            run_user_hook(d, "init", d.external_init, f" on step {func.__name__!r}")


def _each_step_mutator(derived, func, phase: str) -> None:
    done: set[int] = set()
    i = 0
    while i < len(func.config_decorators):  # pre_mutate may add StepMutators: they run too
        d = func.config_decorators[i]
        i += 1
        if id(d) in done or not isinstance(d, StepMutator):
            continue
        done.add(id(d))
        d.external_init()
        step = MutableStep(derived, func, pre_mutate=phase == "pre_mutate",
                           statically_defined=d.statically_defined, inserted_by=_by(d))
        run_user_hook(d, phase, lambda d=d, step=step: getattr(d, phase)(step),
                      f" on step {func.__name__!r}")


def _attach_with(steps: list, with_specs: list[str]) -> None:
    """`--with` decorators go on every step that has none of the kind (Metaflow's rule);
    the mutators' `mutate` sees them."""
    from ..decorators import parse_with_spec

    for func in steps:
        names = {d.name for d in func.decorators}
        for spec in with_specs:
            deco = parse_with_spec(spec)
            if deco.name not in names:
                func.decorators.append(deco)
        func._rf_with_applied = True
