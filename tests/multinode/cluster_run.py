"""Running one of this folder's cluster scripts from a test: the script starts its own
ray.cluster_utils.Cluster in a subprocess (the test session already holds a Ray, and one
process joins one Ray), runs its scenarios with the SeaweedFS S3 datastore shared by the nodes,
and writes a JSON report, which this returns with the script's output (`_log`) and the
datastore it used (`_datastore`)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _text(output) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return (output or "")[-6000:]


def run_cluster_script(script: str, s3_server, tmp: str, prefix: str, *, timeout: float,
                       args: tuple = (), env: dict | None = None) -> dict:
    """`tmp` must be a short folder: Ray's unix sockets live under it, and their paths must
    stay below ~107 characters."""
    out = os.path.join(tmp, "report.json")
    run_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run_env.update(s3_server.env())
    run_env.update({
        # Token auth with this test's own token: every process of that cluster agrees on it.
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
        # Ray's default temp folder (and its "current cluster" file) stays in this test's tmp.
        "RAY_TMPDIR": tmp,
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, run_env.get("PYTHONPATH")])),
    })
    run_env.update(env or {})
    datastore = f"s3://{s3_server.bucket}/{prefix}-{secrets.token_hex(4)}"
    command = [sys.executable, os.path.join(ROOT, "tests", "multinode", script), "--tmp", tmp,
               "--datastore", datastore, "--out", out, *args]
    try:
        proc = subprocess.run(command, check=False, env=run_env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        log = f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    except subprocess.TimeoutExpired as exc:  # run() killed it; the report has what finished
        log = f"timed out after {exc.timeout} s\n{_text(exc.stdout)}\n{_text(exc.stderr)}"
    if not os.path.exists(out):
        pytest.fail(f"{script} wrote no report: {log}")
    with open(out) as fh:
        data = json.load(fh)
    data["_log"] = log
    data["_datastore"] = datastore
    return data
