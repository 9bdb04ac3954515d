"""ArtifactStore: the one path by which artifact values become stored bytes, and back.

Saving an artifact is four choices made here and nowhere else: how the value is encoded
(serializers), its key (the hash of the encoded bytes), whether it is small enough to live in
its task record instead of a blob of its own, and whether the bytes are compressed (Arrow is
written uncompressed on a local disk, where lz4 costs more than it saves, and lz4 on S3).

The two callers are the driver (a run's parameters) and the worker (what a step set). A worker
first `encode`s each value, because it needs the hash to tell a changed artifact from an
unchanged one, then `save`s a whole batch of tasks' blobs in one call; the driver calls
`save_values`, which does both. Nothing else touches the content-addressed store.

It must never know about runs or tasks (records do), and never import ray.
"""

from __future__ import annotations

import base64
import binascii
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rayflow.datastore.cas import BlobCorrupt, BlobMissing, ContentAddressedStore, blob_hash
from rayflow.datastore.records import ArtifactInfo
from rayflow.datastore.serializers import PICKLE, deserialize, serialize, type_name
from rayflow.datastore.storage import BytesLike
from rayflow.exceptions import DataStoreError, RayflowException, UnsaveableArtifactError


class ArtifactLoadError(RayflowException):
    """Intact bytes that do not turn back into a value here (a class that moved, say)."""

    headline = "Cannot load artifact"


class DamagedArtifactError(DataStoreError):
    """An artifact whose stored bytes are missing or do not match its hash."""

    headline = "Damaged artifact"

    def __init__(self, msg: str, artifact: str = ""):
        super().__init__(msg)
        self.artifact = artifact

# Artifacts this small are kept inside the task record instead of a blob file of their own:
# a 100,000-split foreach would otherwise write 100,000 tiny files.
INLINE_MAX_BYTES = 256
# Values `serialize` always pickles, by exact type (a subclass goes the long way): their
# encoding cannot fail, and skipping the type checks for Arrow, numpy and pandas matters at a
# few microseconds a split.
_PLAIN_TYPES = {t: type_name(t()) for t in (int, float, complex, bool, str, bytes, type(None))}


@dataclass(frozen=True, slots=True)
class EncodedArtifact:
    """One value ready to store: its record entry, and the blob bytes (None when inline)."""

    name: str
    info: ArtifactInfo
    data: BytesLike | None


class ArtifactStore:
    """Artifacts of one flow, kept in `cas`."""

    def __init__(self, cas: ContentAddressedStore, compress: bool):
        self.cas = cas
        self.compress = compress

    def encode(self, name: str, value: Any) -> EncodedArtifact:
        """Serialize and hash one value. Raises UnsaveableArtifactError naming the artifact
        when the value cannot be serialized."""
        plain = _PLAIN_TYPES.get(type(value))
        if plain is not None:  # a number or a short string: a split's usual artifact
            data = pickle.dumps(value, protocol=5)
            size = len(data)
            inline = base64.b64encode(data).decode() if size <= INLINE_MAX_BYTES else None
            info = ArtifactInfo(sha=blob_hash(data), size=size, type=plain, encoding=PICKLE,
                                inline=inline)
            return EncodedArtifact(name, info, None if inline is not None else data)
        try:
            ser = serialize(value, compress=self.compress)
        except Exception as exc:  # noqa: BLE001 - pickle raises anything a __reduce__ raises
            raise UnsaveableArtifactError(
                f"Artifact self.{name} ({type(value).__name__}) cannot be saved: "
                f"{type(exc).__name__}: {exc}. Store a picklable value (or convert it, e.g. to "
                f"a pyarrow.Table or numpy array), or keep it in a local variable or a name "
                f"starting with _ if it need not be an artifact.", artifact=name) from None
        view = memoryview(ser.data).cast("B")
        size = view.nbytes
        inline = base64.b64encode(view).decode() if size <= INLINE_MAX_BYTES else None
        info = ArtifactInfo(sha=blob_hash(view), size=size, type=ser.type,
                            encoding=ser.encoding, inline=inline)
        return EncodedArtifact(name, info, None if inline is not None else ser.data)

    def save(self, encoded: Iterable[EncodedArtifact]) -> None:
        """Write the blobs of `encoded` (inline ones need none) in one batch; blobs already
        stored are not written again."""
        blobs = [e for e in encoded if e.data is not None]
        if blobs:
            self.cas.save_blobs([e.data for e in blobs], shas=[e.info.sha for e in blobs])

    def save_values(self, items: dict[str, Any]) -> dict[str, ArtifactInfo]:
        encoded = [self.encode(name, value) for name, value in items.items()]
        self.save(encoded)
        return {e.name: e.info for e in encoded}

    def load(self, info: ArtifactInfo, what: str = "") -> Any:
        """The value, from bytes checked against the artifact's hash. `what` names the
        artifact for errors (e.g. "self.x of task Flow/1/start/0")."""
        if info.inline is not None:
            data = base64.b64decode(info.inline)
            if blob_hash(data) != info.sha:
                raise DamagedArtifactError(
                    f"Artifact {what or info.sha} is damaged: the value kept in its task "
                    f"record does not match its hash. Run `rayflow resume` to compute it "
                    f"again.", what)
            return self._decode(info, data, what)
        try:
            data = self.cas.load_blob(info.sha)
        except (BlobMissing, BlobCorrupt) as exc:
            raise DamagedArtifactError(
                f"Artifact {what or info.sha} cannot be read: {exc} Run `rayflow resume` "
                f"to compute it again.", what) from None
        return self._decode(info, data, what)

    def _decode(self, info: ArtifactInfo, data, what: str) -> Any:
        try:
            return deserialize(info.encoding, data)
        except DataStoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a class that no longer imports
            raise ArtifactLoadError(
                f"Artifact {what or info.sha} ({info.type}) cannot be loaded: "
                f"{type(exc).__name__}: {exc}. If the class it holds moved or changed, load "
                f"it where that class is importable as it was.") from None

    def load_many(self, infos: dict[str, ArtifactInfo], what: str = "") -> dict[str, Any]:
        """Several artifacts, their blobs fetched (and checked) in one parallel batch."""
        from rayflow.datastore.storage import parallel_map

        names = list(infos)
        values = parallel_map(lambda n: self.load(infos[n], f"self.{n} {what}".strip()),
                              names, self.cas.storage.max_workers)
        return dict(zip(names, values))

    def intact(self, info: ArtifactInfo) -> bool:
        """True when the artifact's bytes are there and match its hash: a value kept in its
        task record is checked as a blob is (a damaged blob is removed as it is found)."""
        if info.inline is None:
            return self.cas.verify(info.sha)
        try:
            data = base64.b64decode(info.inline, validate=True)
        except (binascii.Error, ValueError):
            return False
        return blob_hash(data) == info.sha

    def verify(self, infos) -> bool:
        """True when every artifact of `infos` is intact, inline values included."""
        return all(self.intact(i) for i in infos)
