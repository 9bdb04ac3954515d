"""ContentAddressedStore: blobs keyed by the hash of their bytes, so equal content is stored once.

It owns the key (xxh3-128 hex of the bytes: fast enough that hashing is never the bottleneck)
and the blob layout, `<Flow>/data/<h[:2]>/<h>`. A write of a key that already exists is a no-op,
which makes a retried or resumed task cost no bytes.

It must never know what the bytes mean (serializers do), never know about runs or tasks (flow
records do), and never import ray.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import xxhash

from rayflow.datastore.storage import BytesLike, DataStoreStorage
from rayflow.exceptions import DataStoreError

DATA_DIR = "data"


class BlobMissing(DataStoreError, FileNotFoundError):
    """No blob under the hash. (A FileNotFoundError too, for code that expects one.)"""

    def __init__(self, msg: str, sha: str):
        super().__init__(msg)
        self.sha = sha


class BlobCorrupt(DataStoreError):
    """A blob whose bytes no longer match its hash: it was changed after it was written."""

    def __init__(self, msg: str, sha: str):
        super().__init__(msg)
        self.sha = sha


class SavedBlob(NamedTuple):
    """What `save_blobs` returns for each input: a plain `(sha, size)` pair."""

    sha: str
    size: int


HASH_BYTES = 16  # xxh3-128: a blob's key is 32 hex digits


def blob_hash(data: BytesLike) -> str:
    """xxh3-128 hex digest; xxhash reads the buffer in place, so a memoryview is not copied."""
    return xxhash.xxh3_128(data).hexdigest()


def _as_bytes_view(data: BytesLike) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class ContentAddressedStore:
    """Blobs of one flow, under `<flow_name>/data/` in `storage`."""

    def __init__(self, storage: DataStoreStorage, flow_name: str):
        self.storage = storage
        self.flow_name = flow_name
        self.bytes_written = 0   # bytes actually sent to storage: shows what dedupe saved
        self.blobs_written = 0
        self._counter_lock = threading.Lock()

    def blob_path(self, sha: str) -> str:
        return f"{self.flow_name}/{DATA_DIR}/{sha[:2]}/{sha}"

    def save_blobs(self, blobs: Sequence[BytesLike],
                   shas: Sequence[str] | None = None) -> list[SavedBlob]:
        """Store blobs, skipping those already present and intact; one existence batch, one
        write batch. A copy already there is trusted only once it verifies: a damaged one is
        written again. `shas`, when the caller already hashed the blobs, saves hashing them
        twice. Returns `(sha, size)` for each input, in input order."""
        views = [_as_bytes_view(b) for b in blobs]
        if shas is None:
            shas = [blob_hash(v) for v in views]
        saved = [SavedBlob(sha, v.nbytes) for sha, v in zip(shas, views)]
        first_of: dict[str, memoryview] = {}
        for blob, view in zip(saved, views):
            first_of.setdefault(blob.sha, view)  # equal hashes in one call are written once
        shas = list(first_of)
        present = self.storage.exists_many([self.blob_path(s) for s in shas])
        intact = self._verify_many([s for s, here in zip(shas, present) if here])
        missing = [(self.blob_path(s), first_of[s]) for s in shas if s not in intact]
        if missing:
            self.storage.put_many(missing)
            with self._counter_lock:
                self.bytes_written += sum(view.nbytes for _, view in missing)
                self.blobs_written += len(missing)
        return saved

    def _verify_many(self, shas: Sequence[str]) -> set[str]:
        """The hashes among `shas` whose stored blob is there and matches."""
        def ok(sha: str) -> bool:
            try:
                return blob_hash(self.storage.get(self.blob_path(sha))) == sha
            except FileNotFoundError:
                return False

        from rayflow.datastore.storage import parallel_map

        return {s for s, good in zip(shas, parallel_map(ok, list(shas),
                                                          self.storage.max_workers)) if good}

    def load_blob(self, sha: str) -> bytes:
        """The blob's bytes, checked against its hash: BlobMissing or BlobCorrupt otherwise
        (a damaged copy is removed, so the step that made it can write it again)."""
        try:
            data = self.storage.get(self.blob_path(sha))
        except FileNotFoundError:
            raise BlobMissing(
                f"Blob {sha} of flow {self.flow_name} is missing from datastore "
                f"{self.storage.url} (expected at {self.blob_path(sha)}): the datastore was "
                "pruned or copied partially.", sha) from None
        if blob_hash(data) != sha:
            self.storage.delete(self.blob_path(sha))
            raise BlobCorrupt(
                f"Blob {sha} of flow {self.flow_name} in datastore {self.storage.url} does not "
                f"match its hash: it was changed after it was written. The damaged copy was "
                f"removed.", sha)
        return data

    def load_blobs(self, shas: Sequence[str]) -> list[bytes]:
        from rayflow.datastore.storage import parallel_map

        return parallel_map(self.load_blob, list(shas), self.storage.max_workers)

    def verify(self, sha: str) -> bool:
        """True when the blob is there and intact; a damaged copy is removed."""
        try:
            self.load_blob(sha)
        except (BlobMissing, BlobCorrupt):
            return False
        return True
