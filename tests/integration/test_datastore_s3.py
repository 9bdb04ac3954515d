"""The datastore on a real S3 server (SeaweedFS, started by tests/s3server.py): the same storage
contract as local disk, plus what only S3 has: signatures, a missing bucket, a dead endpoint.
Nothing here mocks s3fs or boto."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pytest

from rayflow.datastore import FlowDataStore, RunRecord, TaskRecord, get_storage
from rayflow.exceptions import DataStoreError, DataStoreUnreachable
from tests.datastore_contract import StorageContract

pytestmark = pytest.mark.integration

botocore_exceptions = pytest.importorskip("botocore.exceptions")
s3_module = pytest.importorskip("rayflow.datastore.s3")
S3Storage = s3_module.S3Storage


class TestS3StorageContract(StorageContract):
    @pytest.fixture
    def storage(self, s3_url):
        return S3Storage(s3_url)


def test_get_storage_picks_s3(s3_url):
    storage = get_storage(s3_url)
    assert isinstance(storage, S3Storage) and storage.url == s3_url and not storage.is_local


def test_checksum_default_is_set(s3_url):
    S3Storage(s3_url).put("x", b"1")
    assert os.environ["AWS_REQUEST_CHECKSUM_CALCULATION"] == "when_required"


def test_server_checks_signatures(s3_server, s3_url):
    wrong = s3_server.client(secret_key="not-the-secret")
    with pytest.raises(botocore_exceptions.ClientError) as info:
        wrong.put_object(Bucket=s3_server.bucket, Key="forged", Body=b"x")
    assert info.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied")
    storage = S3Storage(s3_url, storage_options={"key": s3_server.access_key,
                                                 "secret": "not-the-secret"})
    with pytest.raises(DataStoreUnreachable, match="credentials") as info:
        storage.put("forged", b"x")
    assert s3_url in str(info.value)
    assert not S3Storage(s3_url).exists("forged")


def test_missing_bucket_is_a_clear_error(s3_server):
    storage = S3Storage("s3://rayflow-no-such-bucket/prefix")
    with pytest.raises(DataStoreError, match="rayflow-no-such-bucket.*does not exist"):
        storage.put("x", b"1")


def test_url_without_bucket_is_refused():
    with pytest.raises(DataStoreError, match="names no bucket"):
        S3Storage("s3://")


def test_flow_datastore_on_s3(s3_url):
    fds = FlowDataStore.from_url(s3_url, "S3Flow")
    run_id = fds.new_run_id()
    fds.write_run(RunRecord(flow="S3Flow", run_id=run_id, tags=["nightly"]))
    table = pa.table({"x": list(range(1000))})
    infos = fds.save_artifacts({"table": table, "n": 7})
    recs = [TaskRecord(flow="S3Flow", run_id=run_id, step="work", task_id=str(i),
                       artifacts=infos) for i in range(40)]
    fds.write_tasks(recs)
    assert fds.list_run_ids() == [run_id]
    assert fds.list_steps(run_id) == ["work"]
    assert fds.done_task_ids(run_id, "work") == {str(i) for i in range(40)}
    back = fds.read_task(run_id, "work", "3")
    assert fds.load_artifact(back.artifacts["table"]).equals(table)
    assert fds.read_tags(run_id) == ["nightly"]


def _assert_unreachable_quickly(call, url: str) -> None:
    began = time.monotonic()
    with pytest.raises(DataStoreUnreachable) as info:
        call()
    assert time.monotonic() - began < 10, "a dead endpoint must fail fast, not retry for long"
    message = str(info.value)
    assert url in message and "AWS_ENDPOINT_URL" in message and "--datastore" in message
    assert not isinstance(info.value, botocore_exceptions.BotoCoreError)


def test_stopped_server_is_unreachable_then_recovers(s3_server, s3_url, monkeypatch):
    # A storage that reached the server waits out an outage for RAYFLOW_DATASTORE_OUTAGE_S
    # (tests/reliability/test_s3_faults.py); a short wait here, and none for a fresh storage.
    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "1")
    storage = S3Storage(s3_url)
    storage.put("before", b"kept across the restart")
    s3_server.stop(timeout_s=2)  # like a crash: no waiting for a graceful shutdown
    try:
        _assert_unreachable_quickly(lambda: S3Storage(s3_url).get("before"), s3_url)
        _assert_unreachable_quickly(lambda: storage.get("before"), s3_url)
        _assert_unreachable_quickly(lambda: storage.put("during", b"x"), s3_url)
        _assert_unreachable_quickly(lambda: storage.exists_many(["a", "b"]), s3_url)
    finally:
        s3_server.start()
    assert storage.get("before") == b"kept across the restart"
    storage.put("after", b"works again")
    assert S3Storage(s3_url).get("after") == b"works again"
