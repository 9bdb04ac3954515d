"""`@exit_hook`: functions the driver calls once a run has ended (Metaflow's flow decorator).

    def notify(run=None):
        print(f"{run.pathspec} finished: successful={run.successful}")

    @exit_hook(on_success=[notify], on_error=["mypkg.alerts.page_oncall"])
    class TrainFlow(FlowSpec): ...

After the run's final status is written, the driver calls every `on_success` hook of a run
that finished, or every `on_error` hook of one that failed (or was interrupted), in the order
given; a flow may carry several @exit_hook. A hook is a function, or a string: the name of a
function in the flow's file, or a dotted import path (`package.module.function`). A hook
that takes a `run` argument (or `**kwargs`) gets the run as a client `Run`. A hook that fails
prints one line and the next hook still runs; hooks never change the run's outcome.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass

from .exceptions import InvalidFlowError


@dataclass(frozen=True)
class ExitHookDecl:
    on_success: tuple
    on_error: tuple
    options: dict


def exit_hook(cls=None, *, on_success=(), on_error=(), options=None):
    """`@exit_hook(on_success=[fn], on_error=[fn])` on a FlowSpec class."""
    def attach(flow_cls):
        decl = ExitHookDecl(tuple(on_success or ()), tuple(on_error or ()), dict(options or {}))
        flow_cls._rf_exit_hooks = (*flow_cls.__dict__.get("_rf_exit_hooks", ()), decl)
        return flow_cls

    if cls is not None:
        return attach(cls)
    return attach


def exit_hooks_of(flow_cls) -> list[ExitHookDecl]:
    """The class's @exit_hook declarations (its own, then its bases'), checked."""
    decls = [d for klass in reversed(flow_cls.__mro__)
             for d in klass.__dict__.get("_rf_exit_hooks", ())]
    for decl in decls:
        if not decl.on_success and not decl.on_error:
            raise InvalidFlowError(
                f"@exit_hook on {flow_cls.__name__} names no hook. Give it on_success=[fn] "
                "and/or on_error=[fn].")
        for fn in (*decl.on_success, *decl.on_error):
            if not (callable(fn) or isinstance(fn, str)):
                raise InvalidFlowError(
                    f"@exit_hook on {flow_cls.__name__}: {fn!r} is not a hook. A hook is a "
                    "function, or a string naming one (in the flow's file, or as "
                    "package.module.function).")
    return decls


def _resolve(hook, flow_module):
    if callable(hook):
        return hook
    if "." in hook:
        module_path, _, name = hook.rpartition(".")
        try:
            return getattr(importlib.import_module(module_path), name)
        except (ImportError, AttributeError):
            pass
    found = getattr(flow_module, hook, None)
    if not callable(found):
        raise LookupError(f"no function {hook!r} in the flow's file, and it is no importable "
                          "package.module.function")
    return found


def _name(hook) -> str:
    return hook if isinstance(hook, str) else getattr(hook, "__name__", repr(hook))


def run_exit_hooks(flow_cls, successful: bool, make_run, say=print) -> None:
    """Call the hooks for this outcome. `make_run()` gives the client Run of the run."""
    decls = exit_hooks_of(flow_cls)
    hooks = [h for d in decls for h in (d.on_success if successful else d.on_error)]
    flow_module = sys.modules.get(flow_cls.__module__)
    for hook in hooks:
        try:
            fn = _resolve(hook, flow_module)
            spec = inspect.getfullargspec(fn)
            if "run" in spec.args or "run" in spec.kwonlyargs or spec.varkw is not None:
                fn(run=make_run())
            else:
                fn()
        except (Exception, SystemExit) as exc:
            say(f"[exit_hook] Hook '{_name(hook)}' failed with error: "
                f"{type(exc).__name__}: {exc}")
