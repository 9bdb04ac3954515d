"""The identity-resolution flow on a real three-node Ray cluster gives the single-task
clusters (tests/multinode/identity_cluster.py runs it in its own process)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "multinode", "identity_cluster.py")


def test_identity_flow_on_three_nodes_gives_the_single_task_clusters(s3_server,
                                                                     tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("idmn"))  # short: Ray's socket paths live under it
    data = os.path.join(tmp, "records")
    subprocess.run([sys.executable, "-m", "examples.identity_resolution.generate",
                    "--records", "3000", "--seed", "4", "--out", data, "--shard-rows", "1000"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(s3_server.env())
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_TMPDIR": tmp,
                "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))})
    out = os.path.join(tmp, "report.json")
    datastore = f"s3://{s3_server.bucket}/identity-mn-{secrets.token_hex(4)}"
    proc = subprocess.run([sys.executable, SCRIPT, "--tmp", tmp, "--datastore", datastore,
                           "--data", data, "--out", out], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if not os.path.exists(out):
        pytest.fail(f"no report: exit {proc.returncode}\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-6000:]}")
    report = json.load(open(out))
    assert report["nodes"] == 3 and report["status"] == "success", \
        (report, proc.stderr[-3000:])
    assert report["same"] and report["records"] == 3000, report
    assert report["f1"] == report["single_f1"] and report["cc_tasks"] == 3, report
