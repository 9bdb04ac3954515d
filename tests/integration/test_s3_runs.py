"""Runs whose datastore is a real S3 server (SeaweedFS, started by the suite)."""

from __future__ import annotations

import os

import pytest

from rayflow import Run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



def test_flow_on_s3_and_client(run_flow, s3_url):
    s = run_flow(os.path.join(ROOT, "examples", "foreach.py"), {"regions": 2, "shards": 3},
                 datastore_url=s3_url)
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=s3_url)
    assert run.successful and run.data.totals == {"region-0": 5, "region-1": 5}
    assert len(list(run["shard"])) == 6
