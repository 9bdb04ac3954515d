"""Parameters and IncludeFile: run inputs declared as class attributes, as in Metaflow.

A `Parameter` is a descriptor: inside a step, `self.alpha` returns the run's value. Values are
parsed once, on the driver, from `--name value`; a bad value is a user error that names the
parameter and the type it expected. IncludeFile reads a local file at start; its content
becomes an artifact like any parameter value.
"""

from __future__ import annotations

import builtins
import json
import os
from typing import Any

from .exceptions import ParameterError
from .flowstate import state_of


class JSONTypeClass:
    """The `JSONType` of Metaflow: the value is parsed from JSON text."""

    name = "JSON"

    def __call__(self, text):
        if not isinstance(text, str):
            return text
        return json.loads(text)

    def __repr__(self) -> str:
        return "JSONType"


JSONType = JSONTypeClass()

_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}


def parse_bool(text) -> bool:
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


class Parameter:
    """A run parameter. `type` defaults to the type of `default` (str when there is none)."""

    IS_FLAG_PARAMETER = False

    def __init__(self, name: str, default: Any = None, type: Any = None, help: str | None = None,
                 required: bool = False, show_default: bool = True, separator: str | None = None,
                 **kwargs):
        self.name = name
        self.default = default
        self.help = help or ""
        self.required = required
        self.show_default = show_default
        self.separator = separator
        # multiple=True (click's): the option may be repeated; the value is a tuple of them.
        self.multiple = bool(kwargs.pop("multiple", False))
        self.kwargs = kwargs
        if type is None and self.multiple and default is not None and not callable(default):
            # As click infers it: the type of the default itself is the type of each item.
            type = builtins.type(default)
        self.type = type if type is not None else self._infer_type(default)
        self.attr_name: str | None = None  # set by __set_name__

    @staticmethod
    def _infer_type(default):
        if callable(default) and not isinstance(default, type):
            return str
        if isinstance(default, bool):
            return bool
        for t in (int, float, str):
            if isinstance(default, t):
                return t
        if isinstance(default, (dict, list)):
            return JSONType
        return str

    def __set_name__(self, owner, attr_name):
        self.attr_name = attr_name

    @property
    def artifact_name(self) -> str:
        """The name of the value's artifact, `self.<name>` in a step: the class attribute the
        parameter is assigned to (`animal = Parameter("creature")` is `self.animal`, given
        as --creature), as in Metaflow."""
        return self.attr_name or self.name

    # Descriptor protocol: a parameter reads as its value inside a running flow.
    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        state = state_of(obj)
        if state is None or self.artifact_name not in state.params:
            return self
        return state.params[self.artifact_name]

    def __set__(self, obj, value):
        raise AttributeError(
            f"Parameter {self.artifact_name!r} is read-only inside a flow. Store a changed "
            f"value under another name, e.g. self.{self.artifact_name}_used = ...")

    @property
    def type_name(self) -> str:
        return getattr(self.type, "__name__", None) or getattr(self.type, "name", str(self.type))

    @property
    def env_var(self) -> str:
        """The environment variable that gives the default, as in Metaflow."""
        return "METAFLOW_RUN_" + self.name.upper().replace("-", "_")

    def convert(self, raw, where: str = "") -> Any:
        """Turn a command-line string (or a default) into the parameter's typed value; for a
        `multiple` parameter, a list of them (or one) into a tuple of values, as click does."""
        if self.multiple:
            items = () if raw is None else raw if isinstance(raw, (list, tuple)) else (raw,)
            return tuple(self._convert_value(item, where) for item in items)
        return self._convert_value(raw, where)

    def _convert_value(self, raw, where: str) -> Any:
        if raw is None:
            return None
        try:
            if self.separator and isinstance(raw, str):
                return [self._convert_one(x) for x in raw.split(self.separator)]
            return self._convert_one(raw)
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ParameterError(
                f"Parameter {self.name!r}{where} expects {self._describe_type()}, "
                f"but got {raw!r} ({exc}). Pass e.g. --{self.name} {self._example()}."
            ) from None

    def _convert_one(self, raw):
        if self.type is bool:
            return parse_bool(raw)
        if self.type in (int, float) and isinstance(raw, str):
            return self.type(raw.strip())
        if self.type is int and isinstance(raw, float) and raw != int(raw):
            raise ValueError("not an integer")
        if self.type is JSONType or isinstance(self.type, JSONTypeClass):
            return JSONType(raw)
        return self.type(raw)

    def _describe_type(self) -> str:
        return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
            self.type, "JSON" if isinstance(self.type, JSONTypeClass) else self.type_name)

    def _example(self) -> str:
        return {bool: "true", int: "10", float: "0.5", str: "text"}.get(
            self.type, "'{\"key\": 1}'" if isinstance(self.type, JSONTypeClass) else "VALUE")

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, default={self.default!r}, type={self.type_name})"


class IncludeFile(Parameter):
    """A local file read on the driver at the start of the run; its content is the value
    (str when `is_text`, else bytes)."""

    def __init__(self, name: str, default: str | None = None, is_text: bool = True,
                 encoding: str = "utf-8", help: str | None = None, required: bool = False,
                 **kwargs):
        super().__init__(name, default=default, type=str, help=help, required=required, **kwargs)
        self.is_text = is_text
        self.encoding = encoding

    def convert(self, raw, where: str = "") -> Any:
        if raw is None:
            return None
        path = os.path.expanduser(str(raw))
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ParameterError(
                f"IncludeFile {self.name!r}{where} cannot read {path!r}: {exc.strerror}. "
                f"Pass an existing local file with --{self.name} PATH.") from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            raise ParameterError(
                f"IncludeFile {self.name!r}: {path!r} is not {self.encoding} text. Declare it "
                f"with is_text=False to get bytes.") from None


class _Removed:
    """What a FlowMutator's `remove_parameter` leaves in place of a Parameter: no parameter,
    and no constant either."""

    def __repr__(self) -> str:
        return "<removed parameter>"


REMOVED = _Removed()


def declared_parameters(flow_cls) -> list[Parameter]:
    """Every Parameter (Configs included) of a flow class and its bases, one per class
    attribute, in declaration order; each knows the attribute it is assigned to (set here
    for one added after the class was made, e.g. by a mutator). A name that a subclass gives
    to something else (a removed parameter) is no parameter."""
    by_attr: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                if value.attr_name is None:
                    value.attr_name = attr
                by_attr[attr] = value
            elif attr in by_attr:
                del by_attr[attr]
    return list(by_attr.values())


def flow_parameters(flow_cls) -> list[Parameter]:
    """The Parameter objects declared on a flow class (and its bases), in declaration order."""
    return [p for p in declared_parameters(flow_cls)
            if not getattr(p, "IS_CONFIG_PARAMETER", False)]


def forget_flow_caches(flow_cls) -> None:
    """A mutator changed the class's parameters: what was computed from them is stale."""
    _CONSTANT_NAMES.pop(flow_cls, None)


def resolve_parameters(flow_cls, given, config_files: dict | None = None,
                       config_values: dict | None = None, branch: str | None = None,
                       production: bool | None = None, user: str | None = None,
                       with_decorators: list[str] | tuple = ()) -> dict[str, Any]:
    """The values a run starts with: first the flow's Configs (`config_files` and
    `config_values` from --config and --config-value, else the environment, else their
    defaults), then its Parameters from `given` (name -> raw string from the command line),
    the environment or their defaults, which may read the configs. Both are returned, by name.
    `branch` and `production` are @project's, which a parameter's default function may read
    through `current`. The flow's mutators run once the configs are known (they may add
    parameters); `given` may be a function of the mutated class that returns the dict.

    Raises ParameterError for unknown names, missing required values and bad types."""
    from .config import (
        ParameterContext,
        apply_configs,
        config_values_of,
        has_delayed,
        resolve_configs,
        resolve_delayed,
    )
    from .current import current
    from .project import resolve_project

    if user is None:
        from .client import get_username

        user = get_username()
    from .config import flow_configs
    from .user_decorators.process import mutated_class

    by_name = resolve_configs(flow_cls, config_files, config_values, user)
    # A config's artifact, like a parameter's, is named after its class attribute.
    configs = {c.artifact_name: by_name[c.name] for c in flow_configs(flow_cls)}
    apply_configs(flow_cls, configs)
    flow_cls = mutated_class(flow_cls, config_values_of(flow_cls), with_decorators)
    if callable(given):
        given = given(flow_cls)
    project = resolve_project(flow_cls, flow_cls.__name__, user, branch, production,
                              resolve_value=lambda v: resolve_delayed(v, by_name))
    with current._flow_env(flow_cls.__name__, project.to_json() if project else None):
        params = _resolve_params(flow_cls, given, user, config_values_of(flow_cls),
                                 has_delayed, resolve_delayed, ParameterContext)
    return {**configs, **params}


def _resolve_params(flow_cls, given, user, configs, has_delayed, resolve_delayed,
                    context_cls) -> dict[str, Any]:
    params = flow_parameters(flow_cls)
    by_name = {p.name: p for p in params}
    by_name.update({spelling: p for p in params
                    for spelling in (p.name.replace("_", "-"), p.name.replace("-", "_"))})
    values: dict[str, Any] = {}  # by artifact name
    for raw_name, raw in given.items():
        param = by_name.get(raw_name)
        if param is None:
            known = ", ".join(f"--{p.name}" for p in params) or "none"
            raise ParameterError(
                f"Flow {flow_cls.__name__} has no parameter --{raw_name}. Its parameters: {known}.")
        values[param.artifact_name] = param.convert(raw)
    for param in params:
        if param.artifact_name in values:
            continue
        from_env = os.environ.get(param.env_var)
        if from_env is not None:  # as in Metaflow: METAFLOW_RUN_<NAME> sets the default
            raw = from_env.split() if param.multiple else from_env  # click splits on spaces
            values[param.artifact_name] = param.convert(raw, f" (from ${param.env_var})")
            continue
        default = param.default
        if has_delayed(default):
            default = resolve_delayed(default, configs)
        elif callable(default) and not isinstance(default, type):
            from .config import ConfigValue

            default = default(context_cls(flow_cls.__name__, user, param.name,
                                          ConfigValue(configs)))
        if param.required and (default is None or param.multiple and not default):
            raise ParameterError(
                f"Parameter {param.name!r} of flow {flow_cls.__name__} is required. "
                f"Pass it with --{param.name} {param._example()}.")
        values[param.artifact_name] = param.convert(default, " (its default)") \
            if default is not None or param.multiple else None
    return values


PARAM_JSON_MAX_CHARS = 1000


def params_as_json(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as the run and task records keep them: JSON values as they are, long
    text (an IncludeFile's content, say) as a short placeholder, anything else as its repr.
    The exact values are the start task's artifacts; this is for people and tools reading
    the records."""
    out = {}
    for name, value in values.items():
        if isinstance(value, (str, bytes)) and len(value) > PARAM_JSON_MAX_CHARS:
            out[name] = f"<{type(value).__name__} of {len(value)} chars>"
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = repr(value)
        out[name] = value
    return out


_CONSTANT_NAMES: dict[type, frozenset[str]] = {}


def flow_constant_names(flow_cls) -> frozenset[str]:
    """Names of a flow's class-level constants: what Metaflow turns into read-only artifacts of
    every task (class attributes that are not parameters, methods, properties or classes,
    and whose names do not start with `_`)."""
    names = _CONSTANT_NAMES.get(flow_cls)
    if names is None:
        import types

        params = {p.artifact_name for p in declared_parameters(flow_cls)}
        found = set()
        for name in dir(flow_cls):
            if name.startswith("_") or name in params:
                continue
            value = getattr(flow_cls, name)
            if isinstance(value, (types.MethodType, types.FunctionType, property, type,
                                  Parameter, staticmethod, classmethod, _Removed)):
                continue
            found.add(name)
        names = _CONSTANT_NAMES[flow_cls] = frozenset(found)
    return names


def flow_constants(flow_cls) -> dict[str, Any]:
    return {name: getattr(flow_cls, name) for name in sorted(flow_constant_names(flow_cls))}
