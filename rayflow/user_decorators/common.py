"""What the user decorators and mutators share: decorator specs ("name:arg=1,b=2"), finding a
decorator class by name, the run's configs while mutators run, and the errors people see.

A user decorator or mutator class is found by its full name (`module.Class`) or any dotted
suffix of it (`Class`), as in Metaflow. The same class may exist twice in one process (a flow
file run as `__main__` and imported again under its own name, or imported again after an
edit): those copies count as one, and the copy in the flow's own module is the one used.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import os
import re
import sys
import traceback
from typing import Any, Callable

from ..exceptions import InvalidFlowError

IGNORE, ERROR, OVERRIDE = 1, 2, 3  # what add_decorator does with a duplicate (Metaflow's)

_SERIAL = itertools.count()
_CONFIGS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rf_configs", default=None)


class MutatorError(InvalidFlowError):
    """A user decorator or mutator failed, or was used in a way it cannot be."""

    headline = "Flow mutator failed"


# -- the run's configs, while mutators run ----------------------------------------------------
@contextlib.contextmanager
def configs_for_mutators(configs: dict[str, Any]):
    token = _CONFIGS.set(dict(configs))
    try:
        yield
    finally:
        _CONFIGS.reset(token)


def current_configs() -> dict[str, Any]:
    return _CONFIGS.get() or {}


def resolve_args(args, kwargs) -> tuple[list, dict]:
    """A decorator's arguments with every `config_expr`/config value evaluated."""
    from ..config import has_delayed, resolve_delayed

    configs = current_configs()
    args = [resolve_delayed(a, configs) if has_delayed(a) else a for a in args]
    kwargs = resolve_delayed(dict(kwargs), configs) if has_delayed(kwargs) else dict(kwargs)
    return args, kwargs


# -- specs ---------------------------------------------------------------------------------------
def split_spec(spec: str) -> tuple[str, str]:
    name, _, args = spec.partition(":")
    return name.strip(), args


def parse_spec_args(text: str) -> tuple[list, dict]:
    """`a=1,b={"x": 2},0=pos` -> ([pos], {a: 1, b: {...}}): values are JSON, else int, float
    or the text itself; a numeric name is a position (Metaflow's decorator spec)."""
    args: list = []
    kwargs: dict = {}
    if not text.strip():
        return args, kwargs
    for part in re.split(r",(?=[\s\w]+=)", text):
        name, eq, raw = part.partition("=")
        if not eq:
            raise MutatorError(f"Decorator spec {text!r}: write arguments as name=value, "
                               f"separated by commas (got {part!r}).")
        value = _spec_value(raw.strip())
        name = name.strip()
        if name.isdigit():
            pos = int(name)
            args.extend([None] * (pos + 1 - len(args)))
            args[pos] = value
        else:
            kwargs[name] = value
    return args, kwargs


def _spec_value(raw: str):
    try:
        return json.loads(raw.replace('\\"', '"'))
    except json.JSONDecodeError:
        pass
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def make_spec(name: str, args, kwargs) -> str:
    attrs = {**{str(i): v for i, v in enumerate(args) if v is not None},
             **{k: v for k, v in kwargs.items() if v is not None}}
    if not attrs:
        return name
    parts = [f"{k}={v}" if isinstance(v, (int, float, str)) else
             f"{k}={json.dumps(v)}" for k, v in attrs.items()]
    return f"{name}:{','.join(parts)}"


# -- decorator classes by name ----------------------------------------------------------------
def register_class(cls, origin_file: str | None, qualname: str) -> None:
    """Called for every user decorator / mutator class as it is defined."""
    cls._rf_origin = (os.path.abspath(origin_file) if origin_file else cls.__module__, qualname)
    cls._rf_serial = next(_SERIAL)


def module_file(module_name: str) -> str | None:
    return getattr(sys.modules.get(module_name), "__file__", None)


def _subclasses(root: type) -> list[type]:
    out, todo, seen = [], [root], set()
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                out.append(sub)
                todo.append(sub)
    return out


def _groups(root: type, name: str) -> dict[tuple, list[type]]:
    """Classes under `root` whose full name is `name` or ends with `.name`, grouped by the
    definition they come from."""
    groups: dict[tuple, list[type]] = {}
    for cls in _subclasses(root):
        full = cls.__dict__.get("decorator_name")
        if not full or cls.__dict__.get("_rf_abstract"):
            continue
        if full == name or full.endswith("." + name):
            groups.setdefault(cls._rf_origin, []).append(cls)
    return groups


def find_class(root: type, name: str, module: str | None = None) -> type | None:
    """The class `name` names, preferring the copy defined in `module`; None if none. Two
    different classes that both match are an error: the message lists their full names."""
    groups = _groups(root, name)
    if not groups:
        return None
    if len(groups) > 1:
        names = sorted({c.decorator_name for cs in groups.values() for c in cs})
        raise MutatorError(f"The decorator name {name!r} is ambiguous: it matches "
                           f"{', '.join(names)}. Use the full name, e.g. {names[0]!r}.")
    (copies,) = groups.values()
    own = [c for c in copies if c.__module__ == module]
    return max(own or copies, key=lambda c: c._rf_serial)


def short_name(root: type, cls: type) -> str:
    """The shortest dotted suffix of the class's full name that names it alone."""
    parts = cls.decorator_name.split(".")
    for i in range(len(parts) - 1, -1, -1):
        suffix = ".".join(parts[i:])
        if set(_groups(root, suffix)) == {cls._rf_origin}:
            return suffix
    return cls.decorator_name


def known_names(root: type) -> list[str]:
    return sorted({short_name(root, c) for c in _subclasses(root)
                   if c.__dict__.get("decorator_name") and not c.__dict__.get("_rf_abstract")})


def step_decorator_funcs() -> dict[str, Callable]:
    from .. import decorators

    return dict(decorators.STEP_DECORATORS)


def flow_decorator_funcs() -> dict[str, Callable]:
    from .. import decorators
    from ..project import project

    return {**decorators.FLOW_DECORATORS, "project": project}


# -- errors from user code --------------------------------------------------------------------
def where_defined(cls: type) -> str:
    import inspect

    try:
        lines, line = inspect.getsourcelines(cls)
        return f"{os.path.relpath(inspect.getsourcefile(cls) or '?')}:{line}"
    except (OSError, TypeError):
        return cls.__module__


def describe(obj) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    kind = "FlowMutator" if any(k.__name__ == "FlowMutator" for k in cls.__mro__) else \
        "StepMutator" if any(k.__name__ == "StepMutator" for k in cls.__mro__) else \
        "UserStepDecorator"
    return f"{kind} {cls.decorator_name.rpartition('.')[2]} ({where_defined(cls)})"


def _user_traceback(exc: BaseException) -> str:
    """The frames of the user's own code: rayflow's are left out."""
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(own + os.sep)]
    lines = traceback.format_list(frames)
    return "Traceback (most recent call last):\n" + "".join(lines) if lines else ""


def run_user_hook(obj, phase: str, hook: Callable[[], Any], where: str = ""):
    """Call a mutator's or decorator's own code; what it raises becomes one MutatorError
    naming the decorator, where it is defined, and the phase (with the user's frames)."""
    try:
        return hook()
    except MutatorError as exc:
        if getattr(exc, "_rf_named", False):
            raise
        err = MutatorError(f"{describe(obj)}{where}, in {phase}: {exc}")
    except InvalidFlowError as exc:
        err = MutatorError(f"{describe(obj)}{where}, in {phase}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a user's hook may raise anything
        tb = _user_traceback(exc)
        err = MutatorError(f"{describe(obj)}{where} raised in {phase}: {type(exc).__name__}: "
                           f"{exc}" + (f"\n\n{tb}" if tb else ""))
    err._rf_named = True
    raise err
