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

from ..datastore.records import ArtifactInfo
from .wire import by_position

# The hash of an artifact whose task handed it on before encoding it: the task that made it
# (`key`) is not durable yet, and its record will have the hash.
PENDING_SHA = ""


@by_position
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

    @property
    def pending(self) -> bool:
        return self.sha == PENDING_SHA

    def at(self, ref: Any) -> "ArtifactLoc":
        """The same location in the payload `ref` (dataclasses.replace, without its cost)."""
        return ArtifactLoc(self.name, self.sha, self.encoding, self.type, self.size, ref,
                           self.key, self.inline)

    def info(self):
        return ArtifactInfo(self.sha, self.size, self.type, self.encoding, self.inline)

    @classmethod
    def from_info(cls, name: str, info, ref=None, key=None) -> "ArtifactLoc":
        return cls(name, info.sha, info.encoding, info.type, info.size, ref, key, info.inline)


class InlineRef:
    """Stands in for an ObjectRef when tasks run in-process (InlineExecutor)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


_NOTHING: frozenset = frozenset()


class Scope:
    """The artifacts a task of `step` sees: `own` (name -> ArtifactLoc) over the parent's
    scope, less the inherited names the task deleted (`removed`)."""

    __slots__ = ("parent", "own", "removed", "step")

    def __init__(self, own: dict[str, ArtifactLoc], parent: "Scope | None" = None,
                 removed: tuple[str, ...] = (), step: str | None = None):
        self.own = own
        self.parent = parent
        self.removed = frozenset(removed) if removed else _NOTHING
        self.step = step

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
    """Loads artifact values inside a worker, each task getting the value exactly as the task
    that made it left it.

    Payload dicts are cached for the life of one batch, so ten splits reading the same parent
    artifact fetch its payload once. Sharing the fetched *objects* between those splits would
    let one split's in-place change (`self.rows.sort()`) leak into the next, so a value that
    can change in place is isolated (see `_Isolation`). Immutable values (numbers, strings,
    tuples of them, Arrow tables and arrays) are handed out as they are, zero-copy.

    `consumers` is how many tasks share this loader: with one task (and no join), the objects
    Ray deserialized for it are its own, and nothing is copied.
    """

    def __init__(self, datastore_factory, consumers: int = 1):
        self._datastore_factory = datastore_factory
        self._payloads: dict[Any, Any] = {}
        self._datastore = None
        self._isolation = _Isolation(shared=consumers > 1)

    def payload(self, ref: Any) -> Any:
        key = id(ref) if isinstance(ref, InlineRef) else ref.hex()
        value = self._payloads.get(key)
        if value is None:
            value = resolve_ref(ref)
            self._payloads[key] = value
        return value

    def prefetch(self, refs) -> None:
        """Fetch the payloads behind `refs` (ObjectRefs) not cached yet in one call: a batch
        of splits reads dozens of chunks of its foreach variable, and a `ray.get` a chunk
        costs more than the splits of a small chunk."""
        todo = {ref.hex(): ref for ref in refs
                if not isinstance(ref, InlineRef) and ref.hex() not in self._payloads}
        if len(todo) > 1:
            import ray

            self._payloads.update(zip(todo, ray.get(list(todo.values()))))

    def item(self, ref: Any, offset: int) -> Any:
        """A foreach split's own item: element `offset` of the chunk behind `ref`."""
        return self._isolation.hand_out(self.payload(ref)[offset], isinstance(ref, InlineRef))

    def __call__(self, loc: ArtifactLoc) -> Any:
        if loc.ref is not None:
            value = self.payload(loc.ref)[loc.key][loc.name]
            return self._isolation.hand_out(value, isinstance(loc.ref, InlineRef))
        if self._datastore is None:
            self._datastore = self._datastore_factory()
        # A fresh object on every load, its bytes checked against the hash.
        where = f" of task {loc.key}" if loc.key else ""
        return self._datastore.load_artifact(loc.info(), f"self.{loc.name}{where}")


_IMMUTABLE_TYPES = (str, bytes, int, float, bool, complex, type(None), range)
_ARROW_IMMUTABLE = ("Table", "RecordBatch", "Array", "ChunkedArray", "Scalar", "Schema",
                    "DataType", "Field")


def is_immutable(value: Any, depth: int = 0) -> bool:
    """True when no code can change `value` in place, so tasks may share one object."""
    if isinstance(value, _IMMUTABLE_TYPES):
        return True
    kind = type(value)
    if kind in (tuple, frozenset):
        return depth < 4 and all(is_immutable(v, depth + 1) for v in value)
    module = kind.__module__
    if module.startswith("pyarrow"):
        return any(base.__name__.endswith(_ARROW_IMMUTABLE) for base in kind.__mro__)
    return module == "numpy" and isinstance(value, _numpy_generic())


def _numpy_generic():
    import numpy

    return numpy.generic


class _Isolation:
    """Hands each task its own copy of a mutable value, copying only when it must.

    A payload that Ray deserialized in this process belongs to this batch alone: its objects
    were never seen by another task. The first task to load an object gets it as is, and when
    other tasks of the batch may load it too (`shared`), a pristine snapshot is kept first:
    they get copies of the snapshot, never of what the first task may have changed. An
    in-process payload (InlineRef) holds the very objects of the task that made them, shared
    with every later task: every load is a copy.

    Ray hands numpy buffers out zero-copy and read-only. A user expects to change a loaded
    array or frame in place, as in Metaflow, so arrays and pandas objects, and any value whose
    snapshot holds a read-only buffer, are handed out as writable copies; the original stays
    pristine in the payload.
    """

    def __init__(self, shared: bool):
        self.shared = shared
        self._snapshots: dict[int, Any] = {}  # id(object in the payload) -> snapshot or None

    def hand_out(self, value: Any, in_process: bool) -> Any:
        if is_immutable(value):
            return value
        if in_process:
            return _restore(_snapshot(value))
        key = id(value)
        if key in self._snapshots:
            snap = self._snapshots[key]
            if snap is not None:
                return _restore(snap)
            # Not shared: the same object under a second name of one task keeps the aliasing
            # its parent left.
            return _writable_copy(value) if _buffer_backed(value) else value
        if _buffer_backed(value):
            self._snapshots[key] = None
            return _writable_copy(value)
        snap = _snapshot(value) if self.shared else None
        self._snapshots[key] = snap
        if snap is not None and snap.has_readonly:
            return _restore(snap)
        return value


def _buffer_backed(value: Any) -> bool:
    module = type(value).__module__
    return (module == "numpy" and type(value).__name__ == "ndarray") or \
        (module.split(".")[0] == "pandas" and hasattr(value, "copy"))


def _writable_copy(value: Any) -> Any:
    if type(value).__module__ == "numpy":
        return value.copy()
    return value.copy(deep=True)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    data: bytes
    buffers: tuple          # read-only memory as is (it cannot change), the rest copied
    has_readonly: bool


def _snapshot(value: Any) -> _Snapshot:
    import pickle

    raw: list = []
    data = pickle.dumps(value, protocol=5, buffer_callback=raw.append)
    kept, readonly = [], False
    for buf in raw:
        view = buf.raw()
        readonly = readonly or view.readonly
        kept.append(view if view.readonly else bytes(view))
    return _Snapshot(data, tuple(kept), readonly)


def _restore(snap: _Snapshot) -> Any:
    import pickle

    return pickle.loads(snap.data, buffers=[bytearray(b) for b in snap.buffers])
