"""The S3 server stopped mid-checkpoint (briefly, then for longer than a run waits), and two
runs started at once on one S3 datastore. A real SeaweedFS server, started by the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rayflow import Run
from tests.reliability.audit import audit_run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKPOINT_FLOW = "tests/flows/checkpoint_flow.py"
RESUMABLE_FLOW = "tests/flows/resumable_flow.py"
WIDTH = 8


def _start(cmd: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rayflow_cli.main", *cmd], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_an_s3_restart_mid_checkpoint_is_waited_out_and_the_run_finishes(
        cli_env, wait_for_done, s3_server, s3_url, tmp_path):
    # Each split writes 4 MB of its own bytes: with the first split committed, the others are
    # writing or about to when the server goes away for a few seconds.
    proc = _start(["run", CHECKPOINT_FLOW, "--width", str(WIDTH), "--mb", "4", "--quiet",
                   "--run-id-file", str(tmp_path / "rid")], cli_env(s3_url))
    run_id, done = wait_for_done(s3_url, "CheckpointFlow", "work", 1)
    assert done and len(done) < WIDTH, "the outage must begin while splits are still running"
    s3_server.stop()
    time.sleep(4)
    s3_server.start()
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert (tmp_path / "rid").read_text() == run_id
    audit = audit_run(s3_url, "CheckpointFlow", run_id)
    assert audit.status == "success"
    # Task ids are unique in the run: start 0, the splits 1..WIDTH, then join and end.
    assert audit.done == {"start": {"0"}, "work": {str(i + 1) for i in range(WIDTH)},
                          "join": {str(WIDTH + 1)}, "end": {str(WIDTH + 2)}}
    assert audit.blobs >= WIDTH
    run = Run(f"CheckpointFlow/{run_id}", datastore=s3_url)
    assert run.successful and run.data.final == sum(2 * i for i in range(WIDTH))
    assert len(set(run["join"].task.data.digests)) == WIDTH


def test_an_s3_outage_longer_than_the_wait_fails_cleanly_then_resume_finishes(
        cli, cli_env, wait_for_done, s3_server, s3_url, tmp_path, monkeypatch):
    env = {**cli_env(s3_url), "RAYFLOW_DATASTORE_OUTAGE_S": "2"}
    proc = _start(["run", RESUMABLE_FLOW, "--width", "10", "--sleep", "0.5", "--marker_dir",
                   str(tmp_path), "--quiet"], env)
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
    # The driver could not record the failure, so its record still says "running"; once the
    # heartbeat's lease lapses every reader sees the run as interrupted, not running.
    monkeypatch.setenv("RAYFLOW_RUN_LEASE_S", "0.5")
    time.sleep(1)
    broken = audit_run(s3_url, "ResumableFlow", origin)
    assert broken.status in ("failed", "interrupted")
    assert not Run(f"ResumableFlow/{origin}", datastore=s3_url).successful
    finished_before = broken.done.get("work", set())
    monkeypatch.delenv("RAYFLOW_RUN_LEASE_S")

    rid_file = tmp_path / "rid"
    cli("resume", RESUMABLE_FLOW, "--origin-run-id", origin, "--run-id-file", str(rid_file),
        "--quiet", check=0, env={"RAYFLOW_DATASTORE": s3_url})
    resumed = rid_file.read_text()
    audit = audit_run(s3_url, "ResumableFlow", resumed)
    assert audit.status == "success"
    assert audit.done["work"] == {str(i + 1) for i in range(10)}
    run = Run(f"ResumableFlow/{resumed}", datastore=s3_url)
    assert run.successful and run.data.final == sum(2 * i for i in range(10))
    cloned = {t.id for t in run["work"] if t.origin_pathspec}
    assert cloned == finished_before


def test_two_runs_started_at_once_on_one_s3_datastore_keep_apart(cli_env, s3_url, tmp_path):
    env = cli_env(s3_url)
    procs = [_start(["run", RESUMABLE_FLOW, "--width", str(4 + i), "--marker_dir",
                     str(tmp_path), "--quiet", "--run-id-file", str(tmp_path / f"rid{i}")], env)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    ids = [(tmp_path / f"rid{i}").read_text() for i in range(2)]
    assert ids[0] != ids[1]
    for i, rid in enumerate(ids):
        width = 4 + i
        audit = audit_run(s3_url, "ResumableFlow", rid)
        assert audit.status == "success"
        assert audit.done["work"] == {str(k + 1) for k in range(width)}
        run = Run(f"ResumableFlow/{rid}", datastore=s3_url)
        assert run.data.final == sum(2 * k for k in range(width))


def test_a_driver_stopped_by_an_outage_is_not_running_for_readers_at_once(
        cli_env, wait_for_done, s3_server, s3_url, tmp_path):
    """The driver cannot write its run's end while S3 is down; once it has exited, a reader on
    its host sees the run interrupted at once, not "running" until the 60 s lease lapses."""
    from rayflow.datastore import FlowDataStore

    env = {**cli_env(s3_url), "RAYFLOW_DATASTORE_OUTAGE_S": "2"}
    env.pop("RAYFLOW_RUN_LEASE_S", None)
    proc = _start(["run", RESUMABLE_FLOW, "--width", "10", "--sleep", "0.5", "--marker_dir",
                   str(tmp_path), "--quiet"], env)
    origin, _ = wait_for_done(s3_url, "ResumableFlow", "work", 2)
    s3_server.stop()
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        s3_server.start()
    assert proc.returncode == 1, err
    store = FlowDataStore.from_url(s3_url, "ResumableFlow")
    record = store.read_run(origin)
    lease = store.read_lease(origin)
    assert record.status == "running", "the driver wrote its end: this test needs it not to"
    assert time.time() - float(lease["at"]) < 60, "the lease lapsed: nothing left to test"
    assert lease["pid"] == proc.pid
    assert store.run_status(record) == "interrupted"
    assert audit_run(s3_url, "ResumableFlow", origin).status == "interrupted"
    assert Run(f"ResumableFlow/{origin}", datastore=s3_url).status == "interrupted"
