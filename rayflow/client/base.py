"""What every client object shares: pathspec parsing, equality, repr, navigation, errors.

A client object (Flow, Run, Step, Task, DataArtifact) is named by a Metaflow pathspec,
`Flow/run_id/step/task_id/artifact`, cut to its depth. Subclasses say how to find their children;
this base turns that into `obj[id]`, `id in obj`, iteration, and errors that name the object,
the datastore it was looked for in, and what to do. This module must never import ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from rayflow.client.datastores import (
    current_datastore_url,
    describe_datastore,
    flow_datastore,
    resolve_datastore_url,
)
from rayflow.client.namespaces import get_namespace, in_namespace
from rayflow.datastore import FlowDataStore
from rayflow.exceptions import MetaflowInvalidPathspec, MetaflowNotFound


class ObjectNotFound(MetaflowNotFound, KeyError):
    """A child asked for by `obj[id]` or by pathspec does not exist.

    It is a MetaflowNotFound for Metaflow users, and a KeyError because Metaflow's `obj[id]`
    raises KeyError, so both `except` clauses people already wrote keep working."""

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return self.msg


def split_pathspec(cls: type[MetaflowObject], pathspec: object) -> list[str]:
    """Split `pathspec` into exactly as many parts as `cls` has, or say what the form is."""
    form = "/".join(cls._PATH_PARTS)
    if not isinstance(pathspec, str):
        raise MetaflowInvalidPathspec(
            f"{cls.__name__}({pathspec!r}) needs a pathspec string of the form '{form}', "
            f"e.g. {cls.__name__}('{cls._EXAMPLE}')."
        )
    parts = pathspec.strip().strip("/").split("/")
    if len(parts) != len(cls._PATH_PARTS) or not all(p.strip() for p in parts):
        raise MetaflowInvalidPathspec(
            f"{cls.__name__}({pathspec!r}) is not a valid pathspec: a {cls.__name__} is named "
            f"'{form}' ({len(cls._PATH_PARTS)} non-empty parts joined by '/'), "
            f"e.g. {cls.__name__}('{cls._EXAMPLE}')."
        )
    return [p.strip() for p in parts]


def to_datetime(timestamp: float | None) -> datetime | None:
    """Epoch seconds to a naive local datetime, the kind Metaflow's client returns."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp)


def preview(names: Iterable[str], limit: int = 10) -> str:
    """'a, b, c' or 'a, b, ... (25 in all)' for error messages that list what does exist."""
    names = list(names)
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def resolve_url(datastore: str | None) -> str:
    """The datastore URL an object reads: the explicit one, else the client-wide choice."""
    return current_datastore_url() if datastore is None else resolve_datastore_url(datastore)


class MetaflowObject:
    """Base of every client object. Subclasses set `_PATH_PARTS`, `_EXAMPLE`, and implement
    `_child_ids()` and `_child(id)` (None when missing); parents pass themselves down so that
    navigating never re-reads what the parent already loaded."""

    _NAME = "object"  # Metaflow's lower-case name: flow, run, step, task, artifact
    _CHILD_KIND = "child"  # what `obj[id]` returns, for error messages
    _PATH_PARTS: tuple[str, ...] = ()
    _EXAMPLE = ""

    _url: str
    _components: list[str]

    # -- identity -------------------------------------------------------------------------
    @property
    def pathspec(self) -> str:
        return "/".join(self._components)

    @property
    def path_components(self) -> list[str]:
        return list(self._components)

    @property
    def id(self) -> str:
        return self._components[-1]

    @property
    def parent(self) -> MetaflowObject | None:
        raise NotImplementedError

    @property
    def datastore(self) -> str:
        """The datastore this object was read from, described like `get_metadata()`."""
        return describe_datastore(self._url)

    @property
    def _store(self) -> FlowDataStore:
        return flow_datastore(self._url, self._components[0])

    # -- tags and namespace: a run carries them; steps, tasks and artifacts inherit its own ---
    @property
    def tags(self) -> frozenset[str]:
        return self.parent.tags

    @property
    def user_tags(self) -> frozenset[str]:
        return self.parent.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        return self.parent.system_tags

    def is_in_namespace(self) -> bool:
        return in_namespace(self.tags, get_namespace())

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.pathspec == other.pathspec  # type: ignore

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    # -- children -------------------------------------------------------------------------
    def _child_ids(self) -> list[str]:
        raise NotImplementedError

    def _child(self, child_id: str) -> MetaflowObject | None:
        raise NotImplementedError

    def _children(self) -> Iterator[MetaflowObject]:
        for child_id in self._child_ids():
            child = self._child(child_id)
            if child is not None:
                yield child

    def __iter__(self) -> Iterator:
        return self._children()

    def __getitem__(self, child_id: str) -> MetaflowObject:
        child = self._child(str(child_id))
        if child is None:
            raise self._missing_child(str(child_id))
        return child

    def __contains__(self, child_id: object) -> bool:
        return isinstance(child_id, str) and self._child(child_id) is not None

    def _missing_child(self, child_id: str) -> ObjectNotFound:
        kind = self._CHILD_KIND
        return ObjectNotFound(
            f"{self!r} has no {kind} '{child_id}' in datastore {self.datastore}. "
            f"Its {kind}s: {preview(self._child_ids())}. "
            f"Use one of those, or list them with list({self!r})."
        )
