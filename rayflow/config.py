"""`Config` and `config_expr`: configuration fixed when a run starts, usable in decorators and
parameter defaults (Metaflow 2.13 and later).

A `Config("name", default="file.json" | default_value={...} | a function, parser=...,
required=...)` on a flow class is resolved once, before anything else of the run: from
`--config name FILE` or `--config-value name JSON` on the command line, else from the
METAFLOW_FLOW_CONFIG (name -> file) and METAFLOW_FLOW_CONFIG_VALUE (name -> value) variables,
else from its default. Its value is a `ConfigValue`: a read-only dict whose keys also read as
attributes (`self.config.nested.value`). It is an artifact of every task, kept with the run, and
reused by resume.

At class-definition time the value is not known yet, so `config.x`, `config["x"]`,
`config_expr("config.x.lower()")` and `**config` produce *delayed* values, which decorators and
parameter defaults hold until the run resolves them (`resolve_delayed`).
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import json
import os
from dataclasses import dataclass
from typing import Any

from .exceptions import InvalidFlowError, ParameterError
from .parameters import Parameter

UNPACK_KEY = "_rf_unpacked_config_"
FILE_ENV = "METAFLOW_FLOW_CONFIG"
VALUE_ENV = "METAFLOW_FLOW_CONFIG_VALUE"


class ConfigValue(collections.abc.Mapping, dict):
    """A read-only dict whose string keys also read as attributes; nested dicts are
    ConfigValues too. It equals the plain dict with the same content."""

    def __init__(self, data=None):
        dict.__init__(self, {k: _frozen(v) for k, v in dict(data or {}).items()})

    def __getattr__(self, key: str):
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            raise AttributeError(f"Config has no key {key!r}; its keys: "
                                 f"{', '.join(map(str, self.keys())) or 'none'}") from None

    def __getitem__(self, key):
        return dict.__getitem__(self, key)

    def __iter__(self):
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self)

    def _read_only(self, *args, **kwargs):
        raise TypeError("A config is read-only: it is fixed when the run starts. Copy it "
                        "with .to_dict() to change a copy.")

    __setattr__ = __setitem__ = __delattr__ = __delitem__ = _read_only
    clear = update = setdefault = pop = popitem = _read_only

    def to_dict(self) -> dict:
        """A plain, mutable copy (nested ConfigValues become dicts)."""
        return {k: _thawed(v) for k, v in self.items()}

    def copy(self) -> dict:
        return self.to_dict()

    def __eq__(self, other) -> bool:
        return dict.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return dict.__ne__(self, other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __reduce__(self):
        return (ConfigValue, (self.to_dict(),))


def _frozen(value):
    """Dicts inside a config, also inside its lists and tuples, read as ConfigValues."""
    if isinstance(value, dict) and not isinstance(value, ConfigValue):
        return ConfigValue(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_frozen(v) for v in value)
    return value


def _thawed(value):
    if isinstance(value, ConfigValue):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(_thawed(v) for v in value)
    return value


def as_config_value(value, plain: bool = False):
    if plain or value is None or not isinstance(value, dict):
        return value
    return ConfigValue(value)


class DelayEvaluator(collections.abc.Mapping):
    """A value read from configs once they are known: `expr` is a Python expression over the
    configs' names (evaluated in `globals_` of the code that wrote it), followed by the
    attribute and item accesses made on this object since."""

    def __init__(self, expr: str, globals_: dict | None = None, access: tuple = ()):
        object.__setattr__(self, "_expr", expr)
        object.__setattr__(self, "_globals", globals_)
        object.__setattr__(self, "_access", access)

    def _extended(self, step) -> DelayEvaluator:
        return DelayEvaluator(self._expr, self._globals, self._access + (step,))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._extended(("attr", name))

    # Mapping protocol, for `**config` in a decorator: one placeholder key that stands for
    # every key of the value, expanded when the decorator is resolved.
    def __iter__(self):
        yield f"{UNPACK_KEY}{id(self)}"

    def __len__(self) -> int:
        return 1

    def __getitem__(self, key):
        if isinstance(key, str) and key == f"{UNPACK_KEY}{id(self)}":
            return self
        return self._extended(("item", key))

    def evaluate(self, configs: dict[str, Any]):
        names = {k: as_config_value(v) for k, v in configs.items()}
        try:
            value = eval(self._expr, dict(self._globals or {}), names)  # noqa: S307 - the
            # flow author's own expression, as in Metaflow's config_expr
        except NameError as exc:
            raise InvalidFlowError(f"Config expression {self._expr!r} could not be evaluated: "
                                   f"{exc}. Name a Config of the flow.") from None
        for kind, key in self._access:
            key = key.evaluate(configs) if isinstance(key, DelayEvaluator) else key
            try:
                value = getattr(value, key) if kind == "attr" else value[key]
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise InvalidFlowError(
                    f"Config expression {self.describe()} could not be evaluated: "
                    f"{type(exc).__name__}: {exc}.") from None
        return value

    def describe(self) -> str:
        text = self._expr
        for kind, key in self._access:
            text += f".{key}" if kind == "attr" else f"[{key!r}]"
        return text

    def __repr__(self) -> str:
        return f"config_expr({self.describe()!r})"


def config_expr(expr: str) -> DelayEvaluator:
    """A value computed from the flow's configs once the run knows them, e.g.
    `@project(name=config_expr("config").project)` or
    `@environment(vars={"N": config_expr("str(config.n)")})`."""
    caller = inspect.currentframe().f_back
    return DelayEvaluator(expr, caller.f_globals if caller else None)


class Config(Parameter):
    """A configuration of the flow: see the module's docstring. `default` names a file (or is
    a function of the parameter context returning a path); `default_value` is the value
    itself (a dict, a JSON or parser string, or a function of the context); `parser` turns
    the text of a file or value into a dict (a function, or a dotted name of one); `plain`
    keeps the parsed value as is instead of a read-only ConfigValue."""

    IS_CONFIG_PARAMETER = True

    def __init__(self, name: str, default=None, default_value=None, help: str | None = None,
                 required: bool | None = None, parser=None, plain: bool = False, **kwargs):
        if default is not None and default_value is not None:
            raise InvalidFlowError(f"Config {name!r}: give default (a file) or default_value, "
                                   "not both.")
        super().__init__(name, default=None, type=str, help=help, required=bool(required),
                         **kwargs)
        self.default_file = default
        self.default_config_value = default_value
        self.parser = parser
        self.plain = plain

    # At class-definition time a config is a delayed value of itself.
    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("default_file", "default_config_value", "parser",
                                            "plain", "name"):
            raise AttributeError(name)
        return getattr(DelayEvaluator(self.name), name)

    def __getitem__(self, key):
        if isinstance(key, str) and key.startswith(UNPACK_KEY):
            return DelayEvaluator(self.name)
        return DelayEvaluator(self.name)[key]

    def keys(self):
        return [f"{UNPACK_KEY}{id(self)}"]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return 1

    # -- resolution --------------------------------------------------------------------------
    def parse(self, text: str, where: str):
        parser = self.parser
        if isinstance(parser, str):
            parser = _import_parser(parser, self.name)
        if parser is None and self.plain:
            return text  # plain=True without a parser: the text itself, as in Metaflow
        try:
            value = parser(text) if parser else json.loads(text)
        except ParameterError as exc:  # the parser's own message for the user: keep it
            raise ParameterError(f"Config {self.name!r} ({where}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a user's parser may raise anything
            how = getattr(parser, "__name__", "its parser") if parser else "JSON"
            raise ParameterError(f"Config {self.name!r}: {where} could not be parsed as "
                                 f"{how}: {type(exc).__name__}: {exc}.") from None
        if not self.plain and value is not None and \
                not isinstance(value, collections.abc.Mapping):
            how = getattr(parser, "__name__", "its parser") if parser else "JSON"
            raise ParameterError(
                f"Config {self.name!r}: {where} parsed by {how} is a {type(value).__name__}, "
                f"not a mapping. A config is a dict of values; to keep any other value, "
                f"declare it with Config(..., plain=True).")
        return value

    def read_file(self, path: str):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ParameterError(f"Config {self.name!r}: cannot read the file {path!r}: "
                                 f"{exc.strerror}. Pass an existing file with --config "
                                 f"{self.name} FILE.") from None
        return self.parse(text, f"the file {path!r}")


def _import_parser(dotted: str, name: str):
    module, _, attr = dotted.lstrip(".").rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidFlowError(f"Config {name!r}: parser {dotted!r} cannot be imported "
                               f"({exc}). Name a function as package.module.function.") from None


def flow_configs(flow_cls) -> list[Config]:
    from .parameters import declared_parameters

    return [p for p in declared_parameters(flow_cls) if isinstance(p, Config)]


@dataclass
class ParameterContext:
    """What a function default of a Parameter or Config is given (Metaflow's names)."""

    flow_name: str
    user_name: str
    parameter_name: str
    configs: Any = None
    logger: Any = print
    ds_type: str = "local"


def _env_json(var: str) -> dict:
    raw = os.environ.get(var)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{var} is not JSON ({exc}). Set it to a JSON object of config "
                             "names.") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{var} must be a JSON object of config names, not {raw[:60]!r}.")
    return data


def resolve_configs(flow_cls, files: dict[str, str] | None = None,
                    values: dict[str, str] | None = None, user: str = "") -> dict[str, Any]:
    """Every Config of the flow, name -> value (a ConfigValue unless plain; None when
    absent and not required). `files` and `values` come from --config and --config-value."""
    configs = flow_configs(flow_cls)
    by_name = {c.name: c for c in configs}
    files, values = dict(files or {}), dict(values or {})
    for name in [*files, *values]:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise ParameterError(f"Flow {flow_cls.__name__} has no config {name!r}. Its "
                                 f"configs: {known}.")
        if name in files and name in values:
            raise ParameterError(f"Config {name!r} is given both as a file and as a value; "
                                 "give one.")
    env_files, env_values = _env_json(FILE_ENV), _env_json(VALUE_ENV)
    out: dict[str, Any] = {}
    for config in configs:
        name = config.name
        if name in values:
            value = config.parse(values[name], "the --config-value")
        elif name in files:
            value = config.read_file(files[name])
        elif name in env_values:
            raw = env_values[name]
            value = config.parse(raw, f"${VALUE_ENV}") if isinstance(raw, str) else raw
        elif name in env_files:
            value = config.read_file(env_files[name])
        else:
            value = _config_default(config, flow_cls, user, out)
        if value is None and config.required:
            raise ParameterError(f"Config {name!r} of flow {flow_cls.__name__} is required. "
                                 f"Pass it with --config {name} FILE or --config-value "
                                 f"{name} JSON.")
        out[name] = as_config_value(value, config.plain)
    return out


def _config_default(config: Config, flow_cls, user: str, so_far: dict):
    ctx = ParameterContext(flow_cls.__name__, user, config.name, ConfigValue(
        {k: v for k, v in so_far.items()}))
    default_file = config.default_file
    if callable(default_file):
        default_file = default_file(ctx)
    if default_file is not None:
        # A default file that is not there means no value (as in Metaflow); one named on the
        # command line or in the environment must exist.
        return config.read_file(default_file) if os.path.isfile(default_file) else None
    default = config.default_config_value
    if callable(default):
        default = default(ctx)
    if isinstance(default, str):
        return config.parse(default, "its default_value")
    return default


# -- delayed values ------------------------------------------------------------------------------
def has_delayed(value) -> bool:
    if isinstance(value, (DelayEvaluator, Config)):
        return True
    if isinstance(value, dict):
        return any(isinstance(k, str) and k.startswith(UNPACK_KEY) or has_delayed(k)
                   or has_delayed(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(has_delayed(v) for v in value)
    return False


def resolve_delayed(value, configs: dict[str, Any]):
    """`value` with every delayed part evaluated against `configs` (name -> value); a dict
    holding `**config` placeholders gets that config's keys in their place."""
    if isinstance(value, Config):
        return as_config_value(configs.get(value.name), value.plain)
    if isinstance(value, DelayEvaluator):
        return value.evaluate(configs)
    if isinstance(value, dict):
        out: dict = {}
        for k, v in value.items():
            if isinstance(k, str) and k.startswith(UNPACK_KEY):
                unpacked = resolve_delayed(v, configs)
                if not isinstance(unpacked, collections.abc.Mapping):
                    raise InvalidFlowError(f"**{v!r} is not a mapping: it cannot be unpacked "
                                           "into a decorator's arguments.")
                out.update(_plain(unpacked))
            else:
                out[resolve_delayed(k, configs)] = resolve_delayed(v, configs)
        return out
    if isinstance(value, list):
        return [resolve_delayed(v, configs) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_delayed(v, configs) for v in value)
    return value


def _plain(value):
    return value.to_dict() if isinstance(value, ConfigValue) else dict(value)


def config_values_of(flow_cls) -> dict[str, Any]:
    """The config values a run has resolved for this class (set by `apply_configs`)."""
    return getattr(flow_cls, "_rf_config_values", None) or {}


def apply_configs(flow_cls, values: dict[str, Any]) -> None:
    """Record on the class the configs of the run being prepared, for the decorators and
    parameter defaults that wait for them. `values` holds the run's parameter and config
    values by artifact name; what is recorded is by config name, the name expressions use."""
    type.__setattr__(flow_cls, "_rf_config_values",
                     {c.name: values[c.artifact_name] for c in flow_configs(flow_cls)
                      if c.artifact_name in values})
