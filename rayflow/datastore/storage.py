"""The bottom layer of the datastore: bytes in and out, and the choice of backend by URL.

This module owns the `DataStoreStorage` interface that every backend implements (local disk in
`local.py`, S3 in `s3.py`) and the lazy registry that maps a URL's protocol to a backend class.
Which datastore a spelling names is `resolve.py`'s. Paths given to a storage are relative to its
root and '/'-separated.

It must never know what the bytes mean (no hashing, no JSON, no run/task layout: those belong to
the layers above), never import an optional backend library (s3fs, boto) before a URL asks for
it, and never import ray.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from rayflow.datastore.resolve import resolve_datastore_url
from rayflow.exceptions import DataStoreError

BytesLike = bytes | bytearray | memoryview
T = TypeVar("T")
R = TypeVar("R")


class MissingBackendError(DataStoreError, ImportError):
    """A datastore URL needs a library that is not installed. It is an ImportError too, so code
    that guards optional imports keeps working."""

    headline = "Missing datastore backend"


class DataStoreStorage(abc.ABC):
    """Bytes in and out under one root. Every backend passes `tests/datastore_contract.py`.

    Semantics every backend keeps:
    - `get` of an absent path raises FileNotFoundError naming the path and the datastore.
    - `put` replaces an existing object; a reader never sees a half-written object.
    - `list(prefix)` gives the sorted names of the immediate children (objects and "folders"),
      and an empty list when nothing is there.
    - `exists(path)` is true only for an object, not for a folder-like prefix.
    - `delete` of an absent path is a no-op, so cleanup can be retried.
    - The `*_many` calls run in parallel and return results in the order of their input.
    """

    #: How many calls a batch runs at once; backends with network latency raise it.
    max_workers: int = 8

    def __init__(self, url: str):
        self._url = url

    @property
    def url(self) -> str:
        """The datastore's root, as a user would pass it to `--datastore`."""
        return self._url

    @property
    @abc.abstractmethod
    def is_local(self) -> bool:
        """True when the bytes live on this machine's disk (not shared with other nodes)."""

    # -- single objects ----------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, path: str, data: BytesLike) -> None: ...

    @abc.abstractmethod
    def get(self, path: str) -> bytes: ...

    @abc.abstractmethod
    def exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def delete(self, path: str) -> None: ...

    def walk(self, prefix: str) -> list[str]:
        """Every object under `prefix`, as paths relative to it ("a/b/c"), in one pass where
        the backend can (one paginated listing on S3). The default walks `list` level by
        level, treating a name that lists nothing as an object."""
        out: list[str] = []
        pending = [""]
        while pending:
            rel = pending.pop()
            for name in self.list(join_path(prefix, rel) if rel else prefix):
                child = f"{rel}/{name}" if rel else name
                if self.list(join_path(prefix, child)):
                    pending.append(child)
                else:
                    out.append(child)
        return sorted(out)

    def expect_reachable(self) -> None:  # noqa: B027 - a hook; most backends need nothing
        """Tell the storage that its datastore has answered this run before (the driver
        checked it), so an outage that begins now is a blip worth waiting out, not a wrong
        address to report at once. Backends that can wait override it."""

    def check_writable(self) -> None:
        """Raise the datastore's own error now if objects cannot be written under the root
        (a run checks this before it starts anything). The default writes and deletes a
        small probe object."""
        probe = ".rayflow-probe"
        self.put(probe, b"")
        self.delete(probe)

    def put_file(self, path: str, local_path: str) -> None:
        """Store the contents of a file on local disk. Backends may stream instead of reading."""
        with open(local_path, "rb") as f:
            self.put(path, f.read())

    # -- batches -----------------------------------------------------------------------------
    def put_many(self, items: Iterable[tuple[str, BytesLike]]) -> None:
        parallel_map(lambda item: self.put(item[0], item[1]), list(items), self.max_workers)

    def get_many(self, paths: Sequence[str]) -> list[bytes]:
        return parallel_map(self.get, list(paths), self.max_workers)

    def exists_many(self, paths: Sequence[str]) -> list[bool]:
        return parallel_map(self.exists, list(paths), self.max_workers)

    def describe(self, path: str) -> str:
        """A path as a user would find it, for error messages."""
        return join_path(self.url, path) if path else self.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def parallel_map(fn: Callable[[T], R], items: list[T], max_workers: int) -> list[R]:
    """`[fn(x) for x in items]`, run on a thread pool; the first error is re-raised as is."""
    if len(items) <= 1 or max_workers <= 1:
        return [fn(x) for x in items]
    # A pool per batch: threads start lazily and die with the batch, so a storage object holds
    # no threads (it stays picklable, and a forked worker inherits no dead pool).
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)),
                            thread_name_prefix="rayflow-datastore") as pool:
        return list(pool.map(fn, items))


def join_path(base: str, *parts: str) -> str:
    """Join '/'-separated parts onto `base`, skipping empty parts and doubled slashes."""
    out = base.rstrip("/") if base.strip("/") else base
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}" if out and not out.endswith("/") else f"{out}{part}"
    return out


def check_relative_path(path: str, storage_url: str) -> str:
    """Reject paths that would escape the datastore root; a bug above must not write elsewhere."""
    if path.startswith("/") or "\\" in path:
        raise DataStoreError(
            f"Datastore path {path!r} in {storage_url} must be relative and '/'-separated. "
            "This is a bug in the caller: pass paths relative to the datastore root.")
    parts = path.split("/")
    if any(p in ("..", ".") for p in parts):
        raise DataStoreError(
            f"Datastore path {path!r} in {storage_url} contains '.' or '..'. "
            "This is a bug in the caller: pass normalized paths.")
    return path.strip("/")


# -- the protocol registry -------------------------------------------------------------------
@dataclass(frozen=True)
class BackendEntry:
    """Where a backend class lives, and what to install when its import fails."""

    import_path: str          # "package.module:ClassName"
    requires: tuple[str, ...]  # top-level modules whose absence means "not installed"
    install_hint: str


_BACKENDS: dict[str, BackendEntry] = {
    "file": BackendEntry("rayflow.datastore.local:LocalStorage", (), ""),
    "s3": BackendEntry("rayflow.datastore.s3:S3Storage", ("s3fs", "botocore", "aiobotocore"),
                       "Install s3fs to use s3:// datastores: pip install s3fs"),
}


def register_backend(protocol: str, import_path: str, requires: tuple[str, ...] = (),
                     install_hint: str = "") -> None:
    """Add or replace a backend; the class is imported only when a URL uses `protocol`."""
    _BACKENDS[protocol] = BackendEntry(import_path, tuple(requires), install_hint)


def split_protocol(url: str) -> tuple[str, str]:
    """"s3://b/p" -> ("s3", "b/p"); a plain path -> ("file", path)."""
    if "://" in url:
        protocol, rest = url.split("://", 1)
        return protocol.lower(), rest
    return "file", url


def storage_class(protocol: str) -> type[DataStoreStorage]:
    entry = _BACKENDS.get(protocol)
    if entry is None:
        known = ", ".join(f"{p}://" for p in sorted(_BACKENDS))
        raise DataStoreError(
            f"No datastore backend for {protocol}:// URLs. rayflow knows {known} and plain "
            "local paths; pass one of those with --datastore or RAYFLOW_DATASTORE.")
    module_name, class_name = entry.import_path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        missing = (e.name or "").split(".")[0]
        if missing in entry.requires:
            raise MissingBackendError(f"{entry.install_hint} (could not import {e.name}).") from e
        raise
    return getattr(module, class_name)


def get_storage(url: str) -> DataStoreStorage:
    """The storage for a datastore URL, in any spelling `resolve_datastore_url` takes."""
    url = resolve_datastore_url(url)
    protocol, _ = split_protocol(url)
    return storage_class(protocol)(url)
