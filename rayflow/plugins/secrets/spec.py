"""Secret sources (`SecretSpec`), the provider registry, and reading a source safely.

Every message here names the step, the source (`<id> (<type>)`) and, where it matters, a
variable's name; never a value. Metaflow's own messages echo a bad value (`Found non string
value ...`); these do not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ...exceptions import RayflowException

# As Metaflow: a secret may not set one of Metaflow's settings.
DISALLOWED_PREFIXES = ("METAFLOW_",)
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ENTRY_POINT_GROUP = "rayflow.secrets_providers"


class SecretsError(RayflowException):
    headline = "Secrets"
    # Read in a task (task_pre_step), a source that fails fails the task, as in Metaflow:
    # @retry reads it again, @catch catches it.
    task_failure = True


@dataclass(frozen=True)
class SecretSpec:
    """One source, its default type and role applied. `options` never shows in a repr."""

    secrets_backend_type: str
    secret_id: str
    options: dict = field(default_factory=dict, repr=False, compare=False)
    role: str | None = None

    def __str__(self) -> str:
        return f"{self.secret_id} ({self.secrets_backend_type})"

    def to_json(self) -> dict:
        """Metaflow's form, less the options (they may hold the secret itself)."""
        return {"secrets_backend_type": self.secrets_backend_type,
                "secret_id": self.secret_id, "role": self.role}


def _where(step: str | None) -> str:
    return f"Step {step!r}: @secrets" if step else "get_secret"


def default_backend_type() -> str | None:
    return os.environ.get("METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE") or None


def default_role() -> str | None:
    return os.environ.get("METAFLOW_DEFAULT_SECRETS_ROLE") or None


def check_source_shape(source, where: str) -> None:
    """A source as written: a non-empty string, or a dict whose fields have the right types.
    Says what is wrong without showing what was written (a dict may hold the secret)."""
    if isinstance(source, str):
        if not source:
            raise SecretsError(f"{where}: a source is an empty string. Write '<type>.<id>' "
                               "or a dict {'type': ..., 'id': ..., 'options': {...}}.")
        return
    if not isinstance(source, dict):
        raise SecretsError(f"{where}: a source is a {type(source).__name__}; each source is "
                           "a string '<type>.<id>' or a dict {'type': ..., 'id': ..., "
                           "'options': {...}}.")
    for key, kind in (("type", str), ("id", str), ("options", dict), ("role", str)):
        value = source.get(key)
        if value is None and key != "id":
            continue
        if not isinstance(value, kind):
            raise SecretsError(
                f"{where}: a source's {key!r} must be a {kind.__name__}, not "
                f"{type(value).__name__}" + (" (every dict source needs an 'id')"
                                             if key == "id" and value is None else "") + ".")
    unknown = sorted(set(source) - {"type", "id", "options", "role"})
    if unknown:
        raise SecretsError(f"{where}: a source has unknown keys {', '.join(map(repr, unknown))};"
                           " its keys are type, id, options and role.")


def parse_source(source, role: str | None, step: str | None = None) -> SecretSpec:
    """A source (string or dict) as a SecretSpec: the default type where it names none; the
    source's own role, else `role`, else METAFLOW_DEFAULT_SECRETS_ROLE."""
    where = _where(step)
    check_source_shape(source, where)
    role = role if role is not None else default_role()
    if isinstance(source, str):
        kind, dot, secret_id = source.partition(".")
        if not dot:
            kind, secret_id = None, source
        options = {}
    else:
        kind, secret_id = source.get("type"), source["id"]
        options, role = source.get("options") or {}, source.get("role") or role
    if kind is None:
        kind = default_backend_type()
        if kind is None:
            raise SecretsError(
                f"{where}: the source {secret_id!r} names no type and no default is set. "
                "Write '<type>.<id>' (e.g. 'env.API_TOKEN') or a dict with 'type', or set "
                "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE.")
    return SecretSpec(kind, secret_id, dict(options), role)


# ----------------------------------------------------------------------------- registry
_PROVIDERS: dict[str, type] = {}
_ENTRY_POINTS_READ = [False]


def register_secrets_provider(cls: type) -> type:
    """Make the SecretsProvider subclass `cls` the provider of sources of type `cls.TYPE`
    (usable as a class decorator). A later registration of the same TYPE replaces it."""
    from . import SecretsProvider

    if not (isinstance(cls, type) and issubclass(cls, SecretsProvider)) or \
            not isinstance(cls.TYPE, str) or not cls.TYPE:
        raise SecretsError(f"register_secrets_provider({getattr(cls, '__name__', cls)!r}): a "
                           "provider is a SecretsProvider subclass with a TYPE string.")
    _PROVIDERS[cls.TYPE] = cls
    return cls


def _builtins() -> None:
    if "inline" not in _PROVIDERS:
        from . import providers

        for cls in providers.BUILT_IN:
            _PROVIDERS.setdefault(cls.TYPE, cls)


def _read_entry_points() -> None:
    if _ENTRY_POINTS_READ[0]:
        return
    _ENTRY_POINTS_READ[0] = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_secrets_provider(ep.load())
        except Exception as exc:  # noqa: BLE001 - one bad plugin names itself
            raise SecretsError(f"The secrets provider entry point {ep.name!r} ({ep.value}) "
                               f"could not be loaded: {type(exc).__name__}: {exc}") from None


def secrets_provider_types() -> list[str]:
    _builtins()
    _read_entry_points()
    return sorted(_PROVIDERS)


def get_secrets_backend_provider(kind: str, step: str | None = None):
    """An instance of the provider of type `kind`."""
    _builtins()
    if kind not in _PROVIDERS:
        _read_entry_points()
    cls = _PROVIDERS.get(kind)
    if cls is None:
        raise SecretsError(
            f"{_where(step)}: no secrets provider of type {kind!r}. Known types: "
            f"{', '.join(secrets_provider_types())}. A provider of your own: subclass "
            "rayflow.plugins.secrets.SecretsProvider and call register_secrets_provider(cls) "
            f"in the flow's module, or declare it as a {ENTRY_POINT_GROUP!r} entry point.")
    return cls()


# ------------------------------------------------------------------------------ reading
def read_source(spec: SecretSpec, step: str | None = None, provider=None) -> dict[str, str]:
    """The variables of one source, checked: names are identifiers not starting with
    METAFLOW_, values are strings. A provider's failure is one SecretsError naming the step
    and the source."""
    provider = provider or get_secrets_backend_provider(spec.secrets_backend_type, step)
    where = f"{_where(step)} source {str(spec)!r}"
    try:
        values = provider.get_secret_as_dict(spec.secret_id, options=spec.options,
                                             role=spec.role)
    except SecretsError as exc:
        raise SecretsError(f"{where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any provider failure becomes one message
        reason = str(exc)[:300]
        raise SecretsError(f"{where} could not be read: {type(exc).__name__}"
                           f"{': ' + reason if reason else ''}") from None
    if not isinstance(values, dict):
        raise SecretsError(f"{where}: its provider returned a {type(values).__name__}, not a "
                           "dict of variable names to values.")
    for name, value in values.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            shown = repr(name[:60]) if isinstance(name, str) else f"a {type(name).__name__}"
            raise SecretsError(f"{where}: {shown} is not a valid environment variable name.")
        if name.startswith(DISALLOWED_PREFIXES):
            raise SecretsError(f"{where}: the variable {name!r} is refused: names starting "
                               f"with {' or '.join(DISALLOWED_PREFIXES)} are settings, not "
                               "secrets.")
        if not isinstance(value, str):
            raise SecretsError(f"{where}: the value of {name!r} is a {type(value).__name__}, "
                               "not a string.")
    return dict(values)


def check_disjoint(pairs: list[tuple[SecretSpec, dict]], step: str | None,
                   allow_override: bool, environ=None) -> None:
    """No two sources set one variable; none sets a variable the environment has already
    with another value, unless allow_override (as in Metaflow, which refuses the same value
    too: a step's worker on a local Ray inherits the driver's environment, where an `env`
    source comes from)."""
    environ = os.environ if environ is None else environ
    seen: dict[str, SecretSpec] = {}
    for spec, values in pairs:
        for name in values:
            if name in seen:
                raise SecretsError(f"{_where(step)}: the sources {str(seen[name])!r} and "
                                   f"{str(spec)!r} both set {name!r}. Keep it in one source.")
            seen[name] = spec
            if not allow_override and environ.get(name, values[name]) != values[name]:
                raise SecretsError(
                    f"{_where(step)} source {str(spec)!r} sets {name!r}, which the step's "
                    "environment has already (with another value). Rename it, or give "
                    "@secrets allow_override=True.")


def get_secret(source, role: str | None = None) -> dict[str, str]:
    """Metaflow's `get_secret`: the variables of one source, read here and now."""
    return read_source(parse_source(source, role))
