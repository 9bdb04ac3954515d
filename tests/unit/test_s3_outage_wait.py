"""How S3Storage waits out a server that stops answering: pure logic of its retry loop (the
operation is a plain function here; the real server's outages are in tests/reliability)."""

from __future__ import annotations

import time

import botocore.exceptions as boto_errors
import pytest

from rayflow.datastore import s3
from rayflow.exceptions import DataStoreUnreachable


def _flaky(failures: int):
    calls = {"n": 0}

    def op():
        calls["n"] += 1
        if calls["n"] <= failures:
            raise boto_errors.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        return "ok"

    return op, calls


@pytest.fixture
def storage(monkeypatch):
    monkeypatch.setattr(s3, "TRANSIENT_BACKOFF_S", 0.01)
    monkeypatch.setattr(s3, "OUTAGE_BACKOFF_MAX_S", 0.02)
    return s3.S3Storage("s3://bucket/prefix")


def test_a_server_never_reached_fails_at_once(storage):
    op, calls = _flaky(1)
    with pytest.raises(DataStoreUnreachable, match="s3://bucket/prefix"):
        storage._retrying("read", "x", op)
    assert calls["n"] == 1


def test_a_reached_server_that_comes_back_is_waited_for(storage, monkeypatch):
    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "5")
    storage.expect_reachable()
    op, calls = _flaky(5)
    assert storage._retrying("write", "x", op) == "ok"
    assert calls["n"] == 6 and not storage.gave_up


def test_an_outage_longer_than_the_wait_fails_then_later_calls_fail_fast(storage, monkeypatch):
    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "0.2")
    storage.expect_reachable()
    op, calls = _flaky(10**6)
    began = time.monotonic()
    with pytest.raises(DataStoreUnreachable):
        storage._retrying("write", "x", op)
    assert 0.2 <= time.monotonic() - began < 5 and calls["n"] > 1
    assert storage.gave_up
    before = calls["n"]
    with pytest.raises(DataStoreUnreachable):
        storage._retrying("write", "y", op)
    assert calls["n"] == before + 1           # one try, no second wait
    ok, _ = _flaky(0)
    assert storage._retrying("read", "z", ok) == "ok" and not storage.gave_up


def test_a_copy_sent_to_a_worker_keeps_that_the_server_was_reached(storage):
    import pickle

    storage.expect_reachable()
    assert pickle.loads(pickle.dumps(storage)).reached


def test_a_bad_wait_setting_is_one_clear_message(monkeypatch):
    from rayflow.settings import SettingError

    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "soon")
    with pytest.raises(SettingError, match="RAYFLOW_DATASTORE_OUTAGE_S='soon'"):
        s3.outage_s()


def test_a_body_botocore_could_not_rewind_is_sent_again(storage, monkeypatch):
    """A connection dropped mid-upload of a memoryview body: botocore's own retry cannot seek
    it and raises UnseekableStreamError; the whole request is sent again, and the message of
    a final failure does not carry the body."""
    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "5")
    storage.expect_reachable()
    body = memoryview(b"x" * 100_000)
    calls = {"n": 0}

    def op():
        calls["n"] += 1
        if calls["n"] <= 2:
            raise boto_errors.UnseekableStreamError(stream_object=body.tobytes())
        return "ok"

    assert storage._retrying("write", "x", op) == "ok" and calls["n"] == 3
    monkeypatch.setenv("RAYFLOW_DATASTORE_OUTAGE_S", "0.1")

    def always():
        raise boto_errors.UnseekableStreamError(stream_object=body.tobytes())

    with pytest.raises(DataStoreUnreachable) as err:
        storage._retrying("write", "y", always)
    assert len(str(err.value)) < 2_000 and "characters)" in str(err.value)
