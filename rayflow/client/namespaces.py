"""Who is reading, and whose runs they see: the client's namespace.

A namespace is one tag. A run is visible in namespace `ns` when `ns` is one of its user tags or
system tags; every run carries the system tag `user:<name>` of the person who started it, so the
default namespace `user:<you>` shows your own runs. `namespace(None)` is the global namespace,
which shows every run. This mirrors Metaflow's `namespace()`, `get_namespace()` and
`default_namespace()` exactly, so a Metaflow notebook keeps working unchanged.

The namespace is process-wide state, like Metaflow's. The module is named namespaces.py so that
`rayflow.client.namespace` stays the function. It must never import ray.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable

# Checked in this order after RAYFLOW_USER (settings.USER, first so a shared service account
# can still run flows under a person's name); the first non-empty one names the user.
# METAFLOW_USER keeps the setting a Metaflow user already has.
_USER_ENV_VARS = ("METAFLOW_USER", "USER", "USERNAME")

# A sentinel, because None is a real namespace (the global one) and "not chosen yet" is not.
_UNSET = object()
_current_namespace: object = _UNSET


def get_username() -> str:
    """The name runs are recorded under and the default namespace is built from."""
    from .. import settings

    user = settings.USER.get()
    if user:
        return user
    for var in _USER_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (containers)
        return "unknown"


def default_namespace() -> str:
    """Go back to the default namespace, `user:<username>`, and return it."""
    global _current_namespace
    _current_namespace = f"user:{get_username()}"
    return _current_namespace


def namespace(ns: str | None) -> str | None:
    """Switch the namespace the client reads in; None is the global namespace (every run).

    Returns the namespace now in force, as Metaflow does."""
    global _current_namespace
    if ns is not None and (not isinstance(ns, str) or not ns):
        raise ValueError(
            f"namespace({ns!r}) is not valid: a namespace is one tag such as 'user:alice' or "
            f"'team:search', or None for the global namespace that shows every run."
        )
    _current_namespace = ns
    return get_namespace()


def get_namespace() -> str | None:
    """The namespace in force now; the default one until `namespace()` is called."""
    if _current_namespace is _UNSET:
        return default_namespace()
    return _current_namespace  # type: ignore[return-value]


def in_namespace(tags: Iterable[str], ns: str | None) -> bool:
    """True when an object carrying `tags` (user and system tags together) is visible in `ns`."""
    return ns is None or ns in set(tags)
