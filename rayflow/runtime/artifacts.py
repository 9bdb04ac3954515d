"""Where an artifact lives while a run is going on, and how a worker gets it back.

An artifact made in this run lives in the *payload* of the Ray task that made it: one object
per batch of tasks, a dict `task_id -> {name: value}`, owned by the driver because it is a task
return value. An `ArtifactLoc` names (payload ref, task id, name) plus the artifact's hash and
encoding; the hash lets merge_artifacts compare values without loading them. On resume an
artifact may instead live only in the datastore: then `ref` is None and the loader reads the
content-addressed blob.

A `Scope` is the driver's record of what a task can see: its own new artifacts plus its
parent's scope, shared rather than copied, so a 100,000-way foreach does not copy the parent's
artifact table 100,000 times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ArtifactLoc:
    name: str
    sha: str
    encoding: str
    type: str
    size: int
    ref: Any = None  # ObjectRef (or InlineRef) of a payload dict, or None: read the datastore
    key: str | None = None  # task id inside the payload
    inline: str | None = None  # a tiny value's bytes (base64), kept in records, not in a blob

    def info(self):
        from ..datastore import ArtifactInfo

        return ArtifactInfo(sha=self.sha, size=self.size, type=self.type, encoding=self.encoding,
                            inline=self.inline)

    @classmethod
    def from_info(cls, name: str, info, ref=None, key=None) -> "ArtifactLoc":
        return cls(name, info.sha, info.encoding, info.type, info.size, ref, key, info.inline)


class InlineRef:
    """Stands in for an ObjectRef when tasks run in-process (InlineExecutor)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class Scope:
    """The artifacts a task sees: `own` (name -> ArtifactLoc) over the parent's scope, less
    the inherited names the task deleted (`removed`)."""

    __slots__ = ("parent", "own", "removed")

    def __init__(self, own: dict[str, ArtifactLoc], parent: "Scope | None" = None,
                 removed: tuple[str, ...] = ()):
        self.own = own
        self.parent = parent
        self.removed = frozenset(removed)

    def flatten(self) -> dict[str, ArtifactLoc]:
        chain = []
        scope = self
        while scope is not None:
            chain.append(scope)
            scope = scope.parent
        out: dict[str, ArtifactLoc] = {}
        for level in reversed(chain):
            for name in level.removed:
                out.pop(name, None)
            out.update(level.own)
        return out

    def get(self, name: str) -> ArtifactLoc | None:
        scope = self
        while scope is not None:
            loc = scope.own.get(name)
            if loc is not None:
                return loc
            if name in scope.removed:
                return None
            scope = scope.parent
        return None


def resolve_ref(ref: Any) -> Any:
    """The value behind a payload ref (an ObjectRef, or an InlineRef in-process)."""
    if isinstance(ref, InlineRef):
        return ref.value
    import ray

    return ray.get(ref)


class ArtifactLoader:
    """Loads artifact values inside a worker. Caches payload dicts for the life of one batch,
    so ten splits reading the same parent artifact fetch its payload once."""

    def __init__(self, datastore_factory):
        self._datastore_factory = datastore_factory
        self._payloads: dict[Any, Any] = {}
        self._datastore = None

    def payload(self, ref: Any) -> Any:
        key = id(ref) if isinstance(ref, InlineRef) else ref.hex()
        value = self._payloads.get(key)
        if value is None:
            value = resolve_ref(ref)
            self._payloads[key] = value
        return value

    def item(self, ref: Any, offset: int) -> Any:
        """A foreach split's own item: element `offset` of the chunk behind `ref`."""
        return self.payload(ref)[offset]

    def __call__(self, loc: ArtifactLoc) -> Any:
        if loc.ref is not None:
            return self.payload(loc.ref)[loc.key][loc.name]
        if self._datastore is None:
            self._datastore = self._datastore_factory()
        return self._datastore.load_artifact(loc.info())
