"""What `rayflow.S3` hands back and takes: S3Object, S3GetObject, S3PutObject, RangeInfo, and
its errors, with Metaflow's names and fields."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from ..exceptions import RayflowException

# Metaflow keeps a user's metadata dict as JSON under this one S3 metadata key; so does rayflow,
# so that objects written by either read back the same in both.
USER_ATTRIBUTES = "metaflow-user-attributes"


class MetaflowS3Exception(RayflowException):
    headline = "S3 error"


class MetaflowS3NotFound(MetaflowS3Exception):
    headline = "S3 object not found"


class MetaflowS3AccessDenied(MetaflowS3Exception):
    headline = "S3 access denied"


class MetaflowS3URLException(MetaflowS3Exception):
    headline = "Invalid S3 URL"


class MetaflowS3InvalidObject(MetaflowS3Exception):
    headline = "Not an object S3 can store"


class MetaflowS3InvalidRange(MetaflowS3Exception):
    headline = "Invalid S3 range"


class S3GetObject(NamedTuple):
    """A key to `get`/`get_many`, with a byte range (`length` < 0: the last -length bytes)."""

    key: str
    offset: int | None = None
    length: int | None = None


class S3PutObject(NamedTuple):
    """A key to `put_many` (with `value`) or `put_files` (with `path`)."""

    key: str
    value: object = None
    path: str | None = None
    content_type: str | None = None
    encryption: str | None = None
    metadata: dict | None = None


class RangeInfo(NamedTuple):
    total_size: int
    request_offset: int = 0
    request_length: int = -1


class S3Object:
    """An object (or a prefix) in S3, with a local copy when it was downloaded. The local copy
    is a temporary file, removed when the `S3` that made it closes."""

    def __init__(self, prefix: str | None, url: str, path: str | None = None,
                 size: int | None = None, content_type: str | None = None,
                 metadata: dict | None = None, range_info: RangeInfo | None = None,
                 last_modified: float | None = None, encryption: str | None = None):
        self._url, self._path = url, path
        self._size = os.stat(path).st_size if path else size
        self._content_type, self._last_modified = content_type, last_modified
        self._encryption, self._range_info = encryption, range_info
        self._metadata = None
        if metadata and USER_ATTRIBUTES in metadata:
            self._metadata = json.loads(metadata[USER_ATTRIBUTES])
        if prefix is None or prefix == url:
            self._key, self._prefix = url, None
        else:
            self._key = url[len(prefix.rstrip("/")) + 1:].rstrip("/")
            self._prefix = prefix

    @property
    def exists(self) -> bool:
        """True if the key names an object in S3 (a prefix from `list_paths` does not)."""
        return self._size is not None

    @property
    def downloaded(self) -> bool:
        return bool(self._path)

    @property
    def url(self) -> str:
        return self._url

    @property
    def prefix(self) -> str | None:
        return self._prefix

    @property
    def key(self) -> str:
        """The key as asked for: relative to the S3 root (or the listed prefix), else the URL."""
        return self._key

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def blob(self) -> bytes | None:
        if self._path:
            with open(self._path, "rb") as fh:
                return fh.read()
        return None

    @property
    def text(self) -> str | None:
        if self._path:
            return self.blob.decode("utf-8", errors="replace")
        return None

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def has_info(self) -> bool:
        return any(v is not None for v in (self._content_type, self._metadata,
                                           self._range_info, self._encryption))

    @property
    def metadata(self) -> dict | None:
        return self._metadata

    @property
    def content_type(self) -> str | None:
        return self._content_type

    @property
    def encryption(self) -> str | None:
        return self._encryption

    @property
    def range_info(self) -> RangeInfo | None:
        return self._range_info

    @property
    def last_modified(self) -> float | None:
        """Seconds since the epoch."""
        return self._last_modified

    def __str__(self) -> str:
        if self._path:
            return f"<S3Object {self._url} ({self._size} bytes, local)>"
        if self._size:
            return f"<S3Object {self._url} ({self._size} bytes, in S3)>"
        return f"<S3Object {self._url} (object does not exist)>"

    __repr__ = __str__
