"""S3Storage: the datastore in an S3 bucket (or any S3-compatible server), over s3fs.

It owns talking to S3: the client settings (short timeouts and few retries, so a dead endpoint
fails in seconds rather than minutes), parallel batches for many small objects, and turning
botocore's and s3fs's errors into the ones the layers above expect (FileNotFoundError for an
absent key, `DataStoreUnreachable` for a server or credentials problem).

Credentials and the endpoint come from the standard AWS variables and config files
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION).
A pickled S3Storage carries only its URL and any `storage_options` given explicitly, so a
worker reads credentials from its own environment. It must never let a raw botocore error
escape to a user, and never import ray.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator

import botocore.exceptions as boto_errors
import s3fs
from fsspec.exceptions import FSTimeoutError

from rayflow.datastore.storage import BytesLike, DataStoreStorage, check_relative_path, join_path
from rayflow.exceptions import DataStoreError, DataStoreUnreachable

# A dead endpoint should fail in ~5 s: a short connect timeout, and botocore's retries capped
# (its default backoff keeps trying for ~16 s). Reads of big objects still get a long read
# timeout.
CLIENT_CONFIG = {
    "connect_timeout": 2,
    "read_timeout": 60,
    "retries": {"max_attempts": 2, "mode": "standard"},
    # Batches run up to `max_workers` requests at once; the pool must not be the bottleneck.
    "max_pool_connections": 64,
    # botocore's parameter check accepts only bytes, bytearray or files as a Body, yet the
    # rest of its stack (signing, aiohttp) sends a memoryview as is. Skipping the check lets
    # Arrow and numpy buffers go out without a copy of the whole value.
    "parameter_validation": False,
}
# s3fs retries timeouts and throttling on top of botocore; one more try is enough.
S3FS_RETRIES = 2
# A server's own transient failures (HTTP 500/503) are retried here, with backoff.
TRANSIENT_RETRIES = 4
TRANSIENT_BACKOFF_S = 0.25
# Once a storage has reached its server, a server that stops answering (a restart, a network
# blip) is waited for this long, with backoff, before the operation fails: a long run should
# not die of a restart that takes seconds. A server never reached fails fast, so a wrong
# endpoint is one quick message. RAYFLOW_DATASTORE_OUTAGE_S overrides it (0: never wait).
OUTAGE_S = 30.0
OUTAGE_BACKOFF_MAX_S = 2.0
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}


class _TransientServerError(DataStoreUnreachable):
    """The server answered with a failure it says may pass (500, 503): worth another try."""


class _ServerGone(DataStoreUnreachable):
    """The server did not answer at all (refused, closed, timed out): worth waiting for, once
    it has answered before."""


def outage_s() -> float:
    """How long a reached server that stops answering is waited for (see OUTAGE_S)."""
    from .. import settings

    return settings.DATASTORE_OUTAGE_S.get()


def _is_transient(exc: OSError) -> bool:
    if _error_code(exc) in _TRANSIENT_CODES:
        return True
    text = str(exc).lower()
    return exc.errno in (errno.EREMOTEIO, errno.EBUSY) or "internal error" in text or \
        "slow down" in text or "service unavailable" in text

def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception's text, cut: botocore puts a whole request body into some of its own."""
    text = str(exc)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


# The server did not answer: refused, closed, timed out.
_GONE_ERRORS = (
    boto_errors.ConnectionError,        # EndpointConnectionError, ConnectTimeoutError; not OSError
    boto_errors.HTTPClientError,        # ConnectionClosedError, ReadTimeoutError
    FSTimeoutError,
    ConnectionError,
    TimeoutError,
    # The connection dropped while a body was going out, and botocore's own retry could not
    # rewind it: a memoryview body (sent without a copy) has no seek. The whole request is
    # sent again from here, from the start of the same buffer.
    boto_errors.UnseekableStreamError,
)
# No waiting helps these.
_CREDENTIAL_ERRORS = (
    boto_errors.NoCredentialsError,
    boto_errors.PartialCredentialsError,
    boto_errors.CredentialRetrievalError,
)


def _prepare_environment() -> None:
    """Recent botocore adds CRC checksums to every PUT, which some S3-compatible servers
    reject; ask for them only where an API requires them, unless the user chose otherwise."""
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")


def _error_code(exc: BaseException) -> str:
    """The S3 error code ("NoSuchBucket", ...) behind an s3fs-translated error, if any."""
    cause = exc if getattr(exc, "response", None) else exc.__cause__
    response = getattr(cause, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Storage(DataStoreStorage):
    """A datastore under `s3://bucket/prefix`. The bucket must exist; keys are created."""

    # S3 latency is per request, so small objects are written many at a time.
    max_workers = 32

    def __init__(self, url: str, storage_options: dict | None = None):
        super().__init__(url.rstrip("/"))
        rest = self.url[len("s3://"):] if self.url.lower().startswith("s3://") else ""
        self.bucket, _, self.prefix = rest.partition("/")
        if not self.bucket:
            raise DataStoreError(f"Datastore URL {url!r} names no bucket. Use "
                                 "s3://bucket/prefix with --datastore or RAYFLOW_DATASTORE.")
        self.prefix = self.prefix.strip("/")
        self.storage_options = dict(storage_options or {})
        self._fs: s3fs.S3FileSystem | None = None
        self._fs_lock = threading.Lock()
        # Set once the server has answered; a copy sent to a worker keeps it, so workers wait
        # out an outage that begins after the run has reached its datastore.
        self.reached = False
        # Set when an outage outlasted the wait: later operations try once and fail fast, so
        # a batch of many writes fails in one wait, not one wait per write. A success clears it.
        self.gave_up = False

    def __reduce__(self):
        return (_rebuild, (type(self), self.url, self.storage_options, self.reached))

    def expect_reachable(self) -> None:
        self.reached = True

    @property
    def is_local(self) -> bool:
        return False

    @property
    def endpoint_url(self) -> str | None:
        return self.storage_options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")

    @property
    def fs(self) -> s3fs.S3FileSystem:
        """The s3fs filesystem, made on first use so that building a storage never blocks."""
        with self._fs_lock:
            if self._fs is None:
                self._fs = self._make_fs()
            return self._fs

    def _make_fs(self) -> s3fs.S3FileSystem:
        return make_s3fs(self.storage_options, self.endpoint_url)

    # -- paths and errors --------------------------------------------------------------------
    def _key(self, path: str) -> str:
        rel = check_relative_path(path, self.url)
        return join_path(self.prefix, rel) if self.prefix else rel

    def _unreachable(self, action: str, path: str, exc: BaseException) -> DataStoreUnreachable:
        endpoint = self.endpoint_url or "the AWS default endpoint"
        return DataStoreUnreachable(
            f"Cannot {action} {self.describe(path)}: the S3 datastore {self.url} at {endpoint} "
            f"did not answer as expected ({type(exc).__name__}: {_short(exc)}). Check that the "
            "endpoint is up and AWS_ENDPOINT_URL points at it, that the credentials are valid "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE), and that --datastore "
            "(or RAYFLOW_DATASTORE) names the right bucket.")

    def _missing_bucket(self, exc: BaseException) -> DataStoreError:
        return DataStoreError(
            f"The bucket {self.bucket!r} of datastore {self.url} does not exist at "
            f"{self.endpoint_url or 'the AWS default endpoint'} ({exc}). Create the bucket, or "
            "pass an existing one with --datastore.")

    def _retrying(self, action: str, path: str, fn):
        """Call `fn`, retrying the server's transient failures (500 InternalError, 503
        SlowDown; SeaweedFS answers 500 for a few seconds after a restart) with backoff, and,
        once the server has answered before, waiting up to `outage_s()` for a server that
        stopped answering to come back."""
        deadline = None
        attempt = 0
        while True:
            try:
                with self._translated(action, path):
                    result = fn()
                self.reached, self.gave_up = True, False
                return result
            except (_ServerGone, _TransientServerError) as exc:
                retries_left = isinstance(exc, _TransientServerError) and \
                    attempt < TRANSIENT_RETRIES
                if self.reached and not self.gave_up:
                    deadline = deadline or time.monotonic() + outage_s()
                    if time.monotonic() >= deadline and not retries_left:
                        self.gave_up = True
                        raise
                elif not retries_left:
                    raise
            time.sleep(min(TRANSIENT_BACKOFF_S * 2 ** attempt, OUTAGE_BACKOFF_MAX_S))
            attempt += 1

    @contextlib.contextmanager
    def _translated(self, action: str, path: str) -> Iterator[None]:
        """Re-raise S3 failures as the errors the layers above expect, naming the object."""
        try:
            yield
        except FileNotFoundError as e:
            if _error_code(e) == "NoSuchBucket":
                raise self._missing_bucket(e) from e
            raise FileNotFoundError(
                f"No object {path!r} in datastore {self.url} (key s3://{self.bucket}/"
                f"{self._key(path)}).") from e
        except PermissionError as e:
            raise self._unreachable(action, path, e) from e
        except _CREDENTIAL_ERRORS as e:
            raise self._unreachable(action, path, e) from e
        except _GONE_ERRORS as e:
            raise _ServerGone(self._unreachable(action, path, e).msg) from e
        except OSError as e:
            if _is_transient(e):
                raise _TransientServerError(
                    self._unreachable(action, path, e).msg) from e
            raise

    # -- single objects ----------------------------------------------------------------------
    def put(self, path: str, data: BytesLike) -> None:
        body = data
        if isinstance(data, memoryview):
            # botocore wants bytes or a file; Arrow and numpy buffers arrive as memoryviews.
            body = data.cast("B") if data.format != "B" or data.ndim != 1 else data
        self._retrying("write", path,
                       lambda: self.fs.pipe_file(f"{self.bucket}/{self._key(path)}", body))

    def put_file(self, path: str, local_path: str) -> None:
        self._retrying("write", path,
                       lambda: self.fs.put_file(local_path, f"{self.bucket}/{self._key(path)}"))

    def get(self, path: str) -> bytes:
        # One GET: concurrent ranged reads would cost a HEAD first on every small object.
        return self._retrying("read", path, lambda: self.fs.cat_file(
            f"{self.bucket}/{self._key(path)}", max_concurrency=1))

    def exists(self, path: str) -> bool:
        try:
            self._retrying("check", path, lambda: self.fs.call_s3(
                "head_object", Bucket=self.bucket, Key=self._key(path)))
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        key = self._key(prefix) if prefix else self.prefix
        key_prefix = f"{key}/" if key else ""

        def list_all() -> set[str]:
            names: set[str] = set()
            token: dict = {}
            while True:
                page = self.fs.call_s3("list_objects_v2", Bucket=self.bucket,
                                       Prefix=key_prefix, Delimiter="/", **token)
                names.update(o["Key"][len(key_prefix):] for o in page.get("Contents", []))
                names.update(p["Prefix"][len(key_prefix):].rstrip("/")
                             for p in page.get("CommonPrefixes", []))
                if not page.get("IsTruncated"):
                    return names
                token = {"ContinuationToken": page["NextContinuationToken"]}

        names = self._retrying("list", prefix, list_all)
        names.discard("")
        return sorted(names)

    def walk(self, prefix: str) -> list[str]:
        key = self._key(prefix) if prefix else self.prefix
        key_prefix = f"{key}/" if key else ""

        def list_all() -> list[str]:
            keys: list[str] = []
            token: dict = {}
            while True:
                page = self.fs.call_s3("list_objects_v2", Bucket=self.bucket,
                                       Prefix=key_prefix, **token)
                keys += [o["Key"][len(key_prefix):] for o in page.get("Contents", [])]
                if not page.get("IsTruncated"):
                    return keys
                token = {"ContinuationToken": page["NextContinuationToken"]}

        return sorted(k for k in self._retrying("list", prefix, list_all) if k)

    def delete(self, path: str) -> None:
        self._retrying("delete", path, lambda: self.fs.call_s3(
            "delete_object", Bucket=self.bucket, Key=self._key(path)))


def make_s3fs(storage_options: dict | None = None,
              endpoint_url: str | None = None) -> s3fs.S3FileSystem:
    """An s3fs filesystem with rayflow's client settings (short connect timeout, few retries,
    the endpoint from AWS_ENDPOINT_URL unless `endpoint_url` says otherwise)."""
    _prepare_environment()
    options = dict(storage_options or {})
    options.pop("endpoint_url", None)
    client_kwargs = dict(options.pop("client_kwargs", {}))
    # botocore reads AWS_ENDPOINT_URL itself only in recent versions; pass it to be sure.
    client_kwargs.setdefault("endpoint_url", endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))
    config_kwargs = {**CLIENT_CONFIG, **options.pop("config_kwargs", {})}
    # No instance cache: two storages with different credentials must not share a client.
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                           client_kwargs=client_kwargs, config_kwargs=config_kwargs,
                           **options)
    fs.retries = S3FS_RETRIES
    return fs


def _rebuild(cls, url: str, storage_options: dict, reached: bool) -> S3Storage:
    storage = cls(url, storage_options)
    storage.reached = reached
    return storage
