"""rayflow.S3 (Metaflow's S3 client) against a real S3 server (SeaweedFS, started by the
suite): standalone, and inside a flow with S3(run=self)."""

from __future__ import annotations

import io
import os

import pytest

from rayflow import S3, Run
from rayflow.datatools import S3GetObject, S3PutObject
from rayflow.datatools.s3object import (
    MetaflowS3NotFound,
    MetaflowS3URLException,
)

pytestmark = [pytest.mark.integration]


def test_put_get_roundtrip_with_info(s3_url, tmp_path):
    with S3(s3root=s3_url, tmproot=str(tmp_path)) as s3:
        url = s3.put("dir/a.txt", "hello", content_type="text/plain", metadata={"k": "v"})
        assert url == f"{s3_url}/dir/a.txt"
        obj = s3.get("dir/a.txt")
        assert (obj.key, obj.url, obj.text, obj.blob, obj.size) == \
            ("dir/a.txt", url, "hello", b"hello", 5)
        assert obj.exists and obj.downloaded and os.path.exists(obj.path)
        assert obj.content_type == "text/plain" and obj.metadata == {"k": "v"}
        assert obj.last_modified > 0 and obj.range_info.total_size == 5
        info = s3.info("dir/a.txt")
        assert info.size == 5 and not info.downloaded and info.metadata == {"k": "v"}
        path = obj.path
    # Downloads are temporary: gone once the S3 closes.
    assert not os.path.exists(path)


def test_missing_keys(s3_url):
    with S3(s3root=s3_url) as s3:
        with pytest.raises(MetaflowS3NotFound):
            s3.get("nope")
        missing = s3.get("nope", return_missing=True)
        assert not missing.exists and not missing.downloaded and missing.blob is None
        assert not s3.info("nope", return_missing=True).exists
        s3.put("yes", b"1")
        got = s3.get_many(["yes", "nope"], return_missing=True)
        assert [o.exists for o in got] == [True, False]
        assert [o.exists for o in s3.info_many(["yes", "nope"], return_missing=True)] == \
            [True, False]


def test_many_recursive_and_listing(s3_url):
    with S3(s3root=s3_url) as s3:
        put = s3.put_many([("x/1", b"one"), S3PutObject("x/y/2", value=io.BytesIO(b"two")),
                           ("z", "three")])
        assert sorted(k for k, _ in put) == ["x/1", "x/y/2", "z"]
        # overwrite=False leaves existing keys alone and reports only what it wrote.
        assert s3.put_many([("z", "new"), ("w", "w")], overwrite=False) == \
            [("w", f"{s3_url}/w")]
        assert s3.get("z").text == "three"
        listed = {o.key: o.exists for o in s3.list_paths(["x"])}
        assert listed == {"1": True, "y": False}
        assert sorted(o.key for o in s3.list_paths()) == ["w", "x", "z"]
        assert sorted(o.key for o in s3.list_recursive(["x"])) == ["1", "y/2"]
        assert sorted(o.blob for o in s3.get_recursive(["x"])) == [b"one", b"two"]
        assert sorted(o.key for o in s3.get_all()) == ["w", "x/1", "x/y/2", "z"]
        part = s3.get(S3GetObject("x/1", 1, 2))
        assert part.blob == b"ne" and part.range_info.total_size == 3


def test_put_files_and_full_urls(s3_url, tmp_path):
    local = tmp_path / "f.bin"
    local.write_bytes(b"\x00\x01" * 1000)
    with S3(s3root=s3_url) as s3:
        assert s3.put_files([("f.bin", str(local))]) == [("f.bin", f"{s3_url}/f.bin")]
        with pytest.raises(MetaflowS3NotFound, match="does not exist"):
            s3.put_files([("g", str(tmp_path / "missing"))])
        with pytest.raises(MetaflowS3URLException, match="relative"):
            s3.get(f"{s3_url}/f.bin")
    with S3() as s3:
        assert s3.get(f"{s3_url}/f.bin").size == 2000
        with pytest.raises(MetaflowS3URLException, match="s3root"):
            s3.get("f.bin")


def test_bucket_and_prefix(s3_server, s3_url):
    prefix = s3_url.split("/", 3)[3]
    with S3(bucket=s3_server.bucket, prefix=prefix) as s3:
        s3.put("k", "v")
    with S3(s3root=s3_url) as s3:
        assert s3.get("k").text == "v"


def test_s3_run_self_in_a_flow(run_flow, s3_url):
    s = run_flow("s3_client_flow.py", datastore_url=s3_url)
    assert s.successful, s.failures
    data = Run(s.pathspec, datastore=s3_url, _namespace_check=False).data
    assert data.texts == ["part a", "part b", "part c"]
    assert data.meta == [{"part": p} for p in "abc"]
    assert data.listed == ["a.txt", "b.txt", "c.txt"]
    # Keys are under the run's folder of the datastore's `data` prefix, as in Metaflow.
    assert data.urls == [f"{s3_url}/data/S3ClientFlow/{s.run_id}/parts/{p}.txt" for p in "abc"]
    # The step's S3 closed: its downloads are gone.
    assert not any(os.path.exists(p) for p in data.paths)
    # A client Run scopes to the same folder.
    with S3(run=Run(s.pathspec, datastore=s3_url, _namespace_check=False)) as s3:
        assert s3.get("parts/a.txt").text == "part a"


def test_s3_run_with_local_datastore_says_what_to_do(tmp_path, monkeypatch):
    from rayflow import FlowSpec
    from rayflow.current import TaskContext, current

    monkeypatch.delenv("METAFLOW_DATATOOLS_S3ROOT", raising=False)
    monkeypatch.delenv("METAFLOW_DATASTORE_SYSROOT_S3", raising=False)
    current._set(TaskContext("F", "1", "start", "1", datastore_url=str(tmp_path)))
    try:
        with pytest.raises(MetaflowS3URLException, match="is local.*METAFLOW_DATATOOLS_S3ROOT"):
            S3(run=FlowSpec.__new__(FlowSpec))
    finally:
        current._set(None)


def test_s3_run_self_with_a_local_datastore_and_datatools_root(run_flow, s3_url, monkeypatch):
    # Set after the test Ray started: its workers see it only because the driver hands
    # Metaflow's S3 settings to them, as a warm or remote Ray's workers need.
    monkeypatch.setenv("METAFLOW_DATATOOLS_S3ROOT", f"{s3_url}/tools")
    s = run_flow("s3_client_flow.py")
    assert s.successful, s.failures
    data = Run(s.pathspec, datastore=s.datastore, _namespace_check=False).data
    assert data.texts == ["part a", "part b", "part c"]
    assert data.urls[0] == f"{s3_url}/tools/S3ClientFlow/{s.run_id}/parts/a.txt"
