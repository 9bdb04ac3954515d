"""Runs whose datastore is a real S3 server (SeaweedFS, started by the suite)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rayflow import Run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = "tests/flows/resumable_flow.py"



def test_flow_on_s3_and_client(run_flow, s3_url):
    s = run_flow(os.path.join(ROOT, "examples", "foreach.py"), {"regions": 2, "shards": 3},
                 datastore_url=s3_url)
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=s3_url)
    assert run.successful and run.data.totals == {"region-0": 5, "region-1": 5}
    assert len(list(run["shard"])) == 6


def test_s3_outage_fails_cleanly_then_resume_finishes(cli, cli_env, wait_for_done, s3_server,
                                                      s3_url, tmp_path):
    env = cli_env(s3_url)
    cmd = [sys.executable, "-m", "rayflow_cli.main", "run", FLOW, "--width", "10",
           "--sleep", "0.5", "--marker_dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    origin, _ = wait_for_done(s3_url, "ResumableFlow", "work", 2)
    s3_server.stop()
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        s3_server.start()
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    assert "Datastore unreachable" in err and s3_url.split("/")[2] in err
    assert "rayflow resume" in err
    rid_file = tmp_path / "rid"
    cli("resume", FLOW, "--origin-run-id", origin, "--run-id-file", str(rid_file), "--quiet",
        check=0, env={"RAYFLOW_DATASTORE": s3_url})
    run = Run(f"ResumableFlow/{rid_file.read_text()}", datastore=s3_url)
    assert run.successful and run.data.final == sum(2 * i for i in range(10))
    assert any(t.origin_pathspec for t in run["work"])


def test_two_runs_at_once_share_one_s3_datastore(cli_env, s3_url, tmp_path):
    env = cli_env(s3_url)
    procs = []
    for i in range(2):
        cmd = [sys.executable, "-m", "rayflow_cli.main", "run", FLOW, "--width", "4",
               "--marker_dir", str(tmp_path), "--quiet", "--run-id-file",
               str(tmp_path / f"rid{i}")]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    ids = [(tmp_path / f"rid{i}").read_text() for i in range(2)]
    assert ids[0] != ids[1]
    for rid in ids:
        run = Run(f"ResumableFlow/{rid}", datastore=s3_url)
        assert run.successful and run.data.final == 12
        assert all(t.parent.parent.id == rid for t in run["work"])
