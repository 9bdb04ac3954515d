"""The identity-resolution flow on a real three-node Ray cluster gives the single-task
clusters (tests/multinode/identity_cluster.py runs it in its own process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.multinode.cluster_run import run_cluster_script

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_identity_flow_on_three_nodes_gives_the_single_task_clusters(s3_server,
                                                                     tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("idmn"))  # short: Ray's socket paths live under it
    data = os.path.join(tmp, "records")
    subprocess.run([sys.executable, "-m", "examples.identity_resolution.generate",
                    "--records", "3000", "--seed", "4", "--out", data, "--shard-rows", "1000"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    report = run_cluster_script("identity_cluster.py", s3_server, tmp, "identity-mn",
                                timeout=600, args=("--data", data))
    assert report["nodes"] == 3 and report["status"] == "success", \
        (report, report["_log"][-3000:])
    assert report["same"] and report["records"] == 3000, report
    assert report["f1"] == report["single_f1"] and report["cc_tasks"] == 3, report
