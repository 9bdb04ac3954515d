"""`rayflow.S3`: Metaflow's S3 client (`from metaflow import S3`), over s3fs.

    with S3(run=self) as s3:                 # keys under this run's folder of the datastore
        s3.put("model.pkl", blob)
    with S3(s3root="s3://bucket/data/") as s3:
        for obj in s3.get_many(["a.csv", "b.csv"]):
            df = pandas.read_csv(obj.path)    # a local temporary copy

Downloads land in a temporary folder that is removed when the `S3` closes (the end of the
`with` block). Many keys at once (`get_many`, `put_many`, `get_recursive`, ...) go out in
parallel. The endpoint and credentials are the standard AWS ones (AWS_ENDPOINT_URL or
METAFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE, ...), as for an s3:// datastore.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tempfile
from typing import Iterable
from urllib.parse import urlparse

from fsspec.asyn import sync

from .. import metaflow_config as config
from .s3object import (
    USER_ATTRIBUTES,
    MetaflowS3AccessDenied,
    MetaflowS3Exception,
    MetaflowS3InvalidObject,
    MetaflowS3NotFound,
    MetaflowS3URLException,
    RangeInfo,
    S3GetObject,
    S3Object,
    S3PutObject,
)

CONCURRENCY = 32
CHUNK = 8 * 2**20

__all__ = ["S3", "S3Object", "S3GetObject", "S3PutObject", "RangeInfo", "MetaflowS3Exception",
           "MetaflowS3NotFound", "MetaflowS3AccessDenied", "MetaflowS3URLException",
           "MetaflowS3InvalidObject"]


def _split(url: str) -> tuple[str, str]:
    parsed = urlparse(url, allow_fragments=False)
    return parsed.netloc, parsed.path.lstrip("/")


def _range_header(offset, length) -> str | None:
    if offset is None and length is None:
        return None
    start = offset or 0
    if length is None:
        return f"bytes={start}-"
    if length < 0:
        return f"bytes=-{-length}"
    return f"bytes={start}-{start + length - 1}"


def _file_value(key, obj):
    """The value of one put as a readable, seekable file object."""
    if isinstance(obj, (io.RawIOBase, io.BufferedIOBase)):
        if not obj.readable() or not obj.seekable():
            raise MetaflowS3InvalidObject(
                f"The object for key {key!r} is a file that is not readable or not seekable. "
                "Pass bytes, a str, or a file opened for reading.")
        return obj
    if isinstance(obj, str):
        return io.BytesIO(obj.encode("utf-8"))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(obj))
    raise MetaflowS3InvalidObject(
        f"The object for key {key!r} is a {type(obj).__name__}; S3.put stores bytes, a str or "
        "a readable file. Serialize it first (e.g. pickle.dumps(obj)).")


class S3:
    """Metaflow's S3 client. Give it one of `s3root=` (keys are relative to that URL), `run=`
    (keys are under the run's folder of DATATOOLS_S3ROOT), `bucket=`/`prefix=`, or nothing
    (keys are full s3:// URLs)."""

    TYPE = "s3"

    @classmethod
    def get_root_from_config(cls, echo=None, create_on_absent=True):
        return config.datatools_s3root()

    def __init__(self, tmproot: str | None = None, bucket: str | None = None,
                 prefix: str | None = None, run=None, s3root: str | None = None,
                 encryption: str | None = None, **kwargs):
        self._s3root = self._root(bucket, prefix, run, s3root)
        self._encryption = encryption or config.from_conf("S3_SERVER_SIDE_ENCRYPTION")
        self._fs = self._make_fs(kwargs)
        self._tmpdir = tempfile.mkdtemp(dir=tmproot or config.from_conf("TEMPDIR", "."),
                                        prefix="metaflow.s3.")

    # -- set-up ------------------------------------------------------------------------------
    @staticmethod
    def _root(bucket, prefix, run, s3root) -> str | None:
        if run is not None:
            return _run_root(run, bucket, prefix)
        if s3root:
            if urlparse(s3root).scheme != "s3":
                raise MetaflowS3URLException(
                    f"S3(s3root={s3root!r}): s3root is an S3 URL that starts with s3://.")
            return s3root.rstrip("/")
        if bucket:
            return "s3://" + "/".join(p.strip("/") for p in (bucket, prefix or "") if p.strip("/"))
        return None

    @staticmethod
    def _make_fs(kwargs: dict):
        from ..datastore.s3 import make_s3fs

        if kwargs.get("role"):
            raise MetaflowS3Exception(
                f"S3(role={kwargs['role']!r}): rayflow does not assume IAM roles yet. Assume "
                "the role outside the flow (AWS_PROFILE with a role_arn, or credentials in "
                "the AWS_* variables), and drop role=.")
        options: dict = {}
        names = {"aws_access_key_id": "key", "aws_secret_access_key": "secret",
                 "aws_session_token": "token", "profile_name": "profile"}
        for name, value in (kwargs.get("session_vars") or {}).items():
            if name in names:
                options[names[name]] = value
        params = dict(kwargs.get("client_params") or {})
        endpoint = params.pop("endpoint_url", None) or config.from_conf("S3_ENDPOINT_URL")
        options["client_kwargs"] = {k: v for k, v in params.items() if k != "config"}
        return make_s3fs(options, endpoint)

    def __enter__(self) -> "S3":
        return self

    def __exit__(self, *args) -> None:
        self.close()

    def close(self) -> None:
        """Remove the downloaded files."""
        if getattr(self, "_tmpdir", None):
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit the modules may be gone
            pass

    # -- keys --------------------------------------------------------------------------------
    def _url(self, key) -> str:
        key = getattr(key, "key", key)
        if self._s3root is None:
            if key and urlparse(str(key)).scheme == "s3" and urlparse(str(key)).netloc:
                return key
            from ..current import current

            if current.is_running_flow:
                raise MetaflowS3URLException(
                    f"S3 key {key!r} is not an s3:// URL. Inside a step, use S3(run=self) "
                    "for keys under this run, S3(s3root='s3://...'), or full s3:// URLs.")
            raise MetaflowS3URLException(
                f"S3 key {key!r} is not an s3:// URL. Give S3 an s3root= (or run=) to use "
                "relative keys, or use full s3:// URLs.")
        if key:
            if str(key).startswith("s3://"):
                raise MetaflowS3URLException(
                    f"S3 key {key!r} is a full URL, but this S3 was opened with the root "
                    f"{self._s3root}. Use a key relative to it, or open S3() without a root.")
            return f"{self._s3root}/{str(key).lstrip('/')}"
        return self._s3root

    def _run(self, coro):
        return sync(self._fs.loop, lambda: coro)

    async def _client(self):
        return await self._fs.set_session()

    def _new_tmp(self) -> str:
        if self._tmpdir is None:
            raise MetaflowS3Exception("This S3 is closed; its downloads are gone. Use it inside "
                                      "its `with S3(...) as s3:` block.")
        fd, path = tempfile.mkstemp(dir=self._tmpdir, prefix="obj.")
        os.close(fd)
        return path

    async def _call(self, url: str, method: str, **kwargs):
        """One S3 request, with S3's errors as rayflow's."""
        from botocore.exceptions import ClientError

        client = await self._client()
        try:
            return await getattr(client, method)(**kwargs)
        except ClientError as exc:
            raise _translated(exc, url, method) from None

    async def _gather(self, coros):
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(c):
            async with sem:
                return await c
        return await asyncio.gather(*(one(c) for c in coros))

    # -- info and listing --------------------------------------------------------------------
    async def _head(self, url: str, missing_ok: bool) -> S3Object:
        bucket, key = _split(url)
        try:
            resp = await self._call(url, "head_object", Bucket=bucket, Key=key)
        except MetaflowS3NotFound:
            if missing_ok:
                return S3Object(self._s3root, url)
            raise
        return S3Object(self._s3root, url, size=resp["ContentLength"],
                        content_type=resp.get("ContentType"), metadata=resp.get("Metadata"),
                        last_modified=resp["LastModified"].timestamp(),
                        encryption=resp.get("ServerSideEncryption"))

    def info(self, key: str | None = None, return_missing: bool = False) -> S3Object:
        """Size, content type, metadata and last-modified time of one object, without its
        contents."""
        return self._run(self._head(self._url(key), return_missing))

    def info_many(self, keys: Iterable[str], return_missing: bool = False) -> list[S3Object]:
        urls = [self._url(k) for k in keys]
        return self._run(self._gather(self._head(u, return_missing) for u in urls))

    async def _list(self, prefix_url: str, delimiter: str) -> list[tuple[str, int | None]]:
        bucket, path = _split(prefix_url)
        client = await self._client()
        found: list[tuple[str, int | None]] = []
        from botocore.exceptions import ClientError

        try:
            async for page in client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=path, Delimiter=delimiter):
                found += [(f"s3://{bucket}/{c['Key']}", c["Size"])
                          for c in page.get("Contents", [])]
                found += [(f"s3://{bucket}/{c['Prefix']}", None)
                          for c in page.get("CommonPrefixes", [])]
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                return []
            raise _translated(exc, prefix_url, "list") from None
        return found

    def list_paths(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """What is directly under each key, as `ls` shows a folder: objects (`exists`) and
        prefixes (not `exists`)."""
        prefixes = [self._url(k).rstrip("/") + "/" for k in (keys if keys is not None else [None])]
        listed = self._run(self._gather(self._list(p, "/") for p in prefixes))
        return [S3Object(p, url, size=size) for p, found in zip(prefixes, listed)
                for url, size in found]

    def list_recursive(self, keys: Iterable[str] | None = None) -> list[S3Object]:
        """Every object under each key, at any depth."""
        prefixes = [self._url(k) for k in (keys if keys is not None else [None])]
        listed = self._run(self._gather(self._list(p, "") for p in prefixes))
        return [S3Object(p, url, size=size) for p, found in zip(prefixes, listed)
                for url, size in found]

    # -- downloads ---------------------------------------------------------------------------
    async def _download(self, url: str, rng: str | None, missing_ok: bool, prefix=None,
                        with_info: bool = True) -> S3Object:
        bucket, key = _split(url)
        extra = {"Range": rng} if rng else {}
        root = self._s3root if prefix is None else prefix
        try:
            resp = await self._call(url, "get_object", Bucket=bucket, Key=key, **extra)
        except MetaflowS3NotFound:
            if missing_ok:
                return S3Object(root, url)
            raise
        path = self._new_tmp()
        with open(path, "wb") as fh:
            body = resp["Body"]
            while chunk := await body.read(CHUNK):
                fh.write(chunk)
        if not with_info:
            return S3Object(root, url, path)
        return S3Object(root, url, path, content_type=resp.get("ContentType"),
                        metadata=resp.get("Metadata"), range_info=_range_info(resp),
                        last_modified=resp["LastModified"].timestamp(),
                        encryption=resp.get("ServerSideEncryption"))

    def _get_args(self, key) -> tuple[str, str | None]:
        return self._url(key), _range_header(getattr(key, "offset", None),
                                             getattr(key, "length", None))

    def get(self, key: str | S3GetObject | None = None, return_missing: bool = False,
            return_info: bool = True) -> S3Object:
        """Download one object to a local temporary file (`.path`, `.blob`, `.text`)."""
        url, rng = self._get_args(key)
        return self._run(self._download(url, rng, return_missing, with_info=return_info))

    def get_many(self, keys: Iterable[str | S3GetObject], return_missing: bool = False,
                 return_info: bool = True) -> list[S3Object]:
        args = [self._get_args(k) for k in keys]
        return self._run(self._gather(self._download(u, r, return_missing, with_info=return_info)
                                      for u, r in args))

    def get_recursive(self, keys: Iterable[str], return_info: bool = False) -> list[S3Object]:
        """Download every object under each key, at any depth."""
        prefixes = [self._url(k) for k in keys]

        async def all_of():
            listed = await self._gather(self._list(p, "") for p in prefixes)
            return await self._gather(
                self._download(url, None, False, prefix=None if return_info else p,
                               with_info=return_info)
                for p, found in zip(prefixes, listed) for url, _ in found)
        return self._run(all_of())

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Download everything under the S3 root."""
        if self._s3root is None:
            raise MetaflowS3URLException("S3.get_all() downloads everything under the S3 root; "
                                         "open S3 with s3root= or run= to use it.")
        return self.get_recursive([None], return_info)

    # -- uploads -----------------------------------------------------------------------------
    def _put_args(self, content_type, metadata, encryption=None) -> dict:
        extra = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = {USER_ATTRIBUTES: json.dumps(metadata)}
        if encryption or self._encryption:
            extra["ServerSideEncryption"] = encryption or self._encryption
        return extra

    async def _upload(self, url: str, source, extra: dict, overwrite: bool) -> str | None:
        """Upload a file object or a local path; None if it exists and `overwrite` is off."""
        if not overwrite and (await self._head(url, missing_ok=True)).exists:
            return None
        try:
            if isinstance(source, str):
                await self._fs._put_file(source, url, **extra)
            else:
                source.seek(0)
                await self._fs._pipe_file(url, source.read(), **extra)
        except FileNotFoundError:
            raise MetaflowS3NotFound(f"Cannot upload to {url}: its bucket does not exist.") \
                from None
        except PermissionError:
            raise MetaflowS3AccessDenied(f"Uploading to {url} is denied. Check the AWS "
                                         "credentials this process has.") from None
        return url

    def put(self, key: str | S3PutObject, obj, overwrite: bool = True,
            content_type: str | None = None, metadata: dict | None = None) -> str:
        """Upload bytes, a str or a file object; returns the object's URL."""
        blob = _file_value(key, obj)
        url = self._url(key)
        self._run(self._upload(url, blob, self._put_args(content_type, metadata), overwrite))
        return url

    def put_many(self, key_objs, overwrite: bool = True) -> list[tuple[str, str]]:
        """Upload many (key, value) pairs or S3PutObjects; returns (key, url) of those
        uploaded."""
        items = []
        for item in key_objs:
            key, value = (item.key, item.value) if isinstance(item, S3PutObject) else item
            items.append((key, _file_value(key, value), item))
        return self._put_all(items, overwrite)

    def put_files(self, key_paths, overwrite: bool = True) -> list[tuple[str, str]]:
        """Upload many (key, local path) pairs or S3PutObjects with `path`."""
        items = []
        for item in key_paths:
            key, path = (item.key, item.path) if isinstance(item, S3PutObject) else item
            if not os.path.exists(path):
                raise MetaflowS3NotFound(f"S3.put_files: the local file {path!r} (key {key!r}) "
                                         "does not exist.")
            items.append((key, path, item))
        return self._put_all(items, overwrite)

    def _put_all(self, items, overwrite: bool) -> list[tuple[str, str]]:
        jobs = [(key, self._url(key), source,
                 self._put_args(getattr(item, "content_type", None),
                                getattr(item, "metadata", None), getattr(item, "encryption", None)))
                for key, source, item in items]
        urls = self._run(self._gather(self._upload(url, source, extra, overwrite)
                                      for _, url, source, extra in jobs))
        return [(key, url) for (key, _, _, _), url in zip(jobs, urls) if url is not None]


def _code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translated(exc, url: str, what: str) -> MetaflowS3Exception:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket") or status == 404:
        return MetaflowS3NotFound(f"{url} does not exist in S3.")
    if code in ("AccessDenied", "403", "Forbidden") or status == 403:
        return MetaflowS3AccessDenied(f"Access to {url} is denied ({what}). Check the AWS "
                                      "credentials this process has.")
    return MetaflowS3Exception(f"S3 {what} of {url} failed: {code or status}: {exc}")


def _range_info(resp) -> RangeInfo:
    content_range = resp.get("ContentRange")
    if content_range:  # "bytes 0-9/100"
        span, _, total = content_range.split(" ")[-1].partition("/")
        start, _, end = span.partition("-")
        return RangeInfo(int(total), int(start), int(end) - int(start) + 1)
    size = resp["ContentLength"]
    return RangeInfo(size, 0, size)


def _run_root(run, bucket, prefix) -> str:
    """`S3(run=...)`: the run's folder under DATATOOLS_S3ROOT (the S3 datastore's `data`)."""
    from ..current import current
    from ..flowspec import FlowSpec

    if isinstance(run, FlowSpec):
        if not current.is_running_flow:
            raise MetaflowS3URLException("S3(run=self) works inside a running step only. "
                                         "Outside a flow, use S3(run=Run('Flow/id')) or s3root=.")
        flow_name, run_id, ds_url = current.flow_name, current.run_id, current.datastore_url
    else:
        flow_name, run_id = run.pathspec.split("/")[:2]
        ds_url = getattr(run, "_url", None)
    root = config.datatools_s3root(ds_url)
    if root is None and not bucket:
        raise MetaflowS3URLException(
            f"S3(run=...) of {flow_name}/{run_id}: the run's datastore ({ds_url}) is local, so "
            "there is no S3 folder for the run's data (DATATOOLS_S3ROOT). Run with an s3:// "
            "datastore (--datastore or RAYFLOW_DATASTORE), set METAFLOW_DATATOOLS_S3ROOT, or "
            "use S3(s3root='s3://bucket/prefix').")
    parsed = urlparse(root or "")
    bucket = bucket or parsed.netloc
    prefix = prefix or parsed.path
    parts = [p.strip("/") for p in (bucket, prefix, flow_name, run_id) if p and p.strip("/")]
    return "s3://" + "/".join(parts)
