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

DATA_DIR = "data"


class SavedBlob(NamedTuple):
    """What `save_blobs` returns for each input: a plain `(sha, size)` pair."""

    sha: str
    size: int


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
        """Store blobs, skipping those already present; one existence batch, one write batch.
        `shas`, when the caller already hashed the blobs, saves hashing them twice.

        Returns `(sha, size)` for each input, in input order."""
        views = [_as_bytes_view(b) for b in blobs]
        if shas is None:
            shas = [blob_hash(v) for v in views]
        saved = [SavedBlob(sha, v.nbytes) for sha, v in zip(shas, views)]
        first_of: dict[str, memoryview] = {}
        for blob, view in zip(saved, views):
            first_of.setdefault(blob.sha, view)  # equal hashes in one call are written once
        shas = list(first_of)
        present = self.storage.exists_many([self.blob_path(s) for s in shas])
        missing = [(self.blob_path(s), first_of[s]) for s, here in zip(shas, present) if not here]
        if missing:
            self.storage.put_many(missing)
            with self._counter_lock:
                self.bytes_written += sum(view.nbytes for _, view in missing)
                self.blobs_written += len(missing)
        return saved

    def load_blob(self, sha: str) -> bytes:
        try:
            return self.storage.get(self.blob_path(sha))
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"Blob {sha} of flow {self.flow_name} is missing from datastore "
                f"{self.storage.url} (expected at {self.blob_path(sha)}). The datastore was "
                "pruned or copied partially; rerun the step that produced it.") from e

    def load_blobs(self, shas: Sequence[str]) -> list[bytes]:
        try:
            return self.storage.get_many([self.blob_path(s) for s in shas])
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"A blob of flow {self.flow_name} is missing from datastore "
                f"{self.storage.url}: {e}. Rerun the step that produced it.") from e
