"""A run whose driver is killed: every process it started ends with it, and readers call the
run interrupted instead of running forever."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import psutil
import pytest

from rayflow import Run, Task
from rayflow.datastore import FlowDataStore
from rayflow.datastore.records import RunRecord
from tests.reliability.audit import audit_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "tests", "flows", "resumable_flow.py")


@pytest.mark.integration
def test_killing_the_driver_ends_the_embedded_ray_it_started(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    cmd = [sys.executable, "-m", "rayflow_cli.main", "run", FLOW, "--width", "4",
           "--sleep", "30", "--quiet", "--datastore", str(tmp_path / "ds")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    driver = psutil.Process(proc.pid)
    started: dict[int, float] = {}
    deadline = time.time() + 120
    while time.time() < deadline:  # until Ray's raylet and a worker run the splits
        kids = driver.children(recursive=True)
        started.update({k.pid: k.create_time() for k in kids})
        if any("raylet" in " ".join(k.cmdline()) for k in kids if k.is_running()) and \
                any("ray::" in k.name() or "work" in " ".join(k.cmdline()) for k in kids):
            break
        time.sleep(0.5)
    assert started, "the run started no processes"
    time.sleep(2)
    started.update({k.pid: k.create_time() for k in driver.children(recursive=True)})
    os.kill(proc.pid, signal.SIGKILL)  # the driver we started, by its pid
    proc.wait(timeout=30)

    def survivors():
        out = []
        for pid, created in started.items():
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {' '.join(p.cmdline())[:80]}")
            except psutil.Error:
                continue
        return out

    deadline = time.time() + 30
    while survivors() and time.time() < deadline:
        time.sleep(0.5)
    left = survivors()
    for line in left:  # do not leave them behind for the rest of the suite
        try:
            psutil.Process(int(line.split()[0])).kill()
        except psutil.Error:
            pass
    assert not left, f"processes of the killed run live on: {left}"


def test_a_run_whose_heartbeat_lapsed_is_interrupted(tmp_path, monkeypatch):
    store = FlowDataStore.from_url(str(tmp_path / "ds"), "SomeFlow")
    now = time.time()
    rec = RunRecord(flow="SomeFlow", run_id="1", status="running", started_at=now - 3600)
    store.write_run(rec)
    assert store.run_status(rec, now) == "interrupted"  # no heartbeat, started long ago
    store.write_heartbeat("1", {"pid": 1})
    assert store.run_status(rec) == "running"
    assert store.run_status(rec, now + 61) == "interrupted"
    monkeypatch.setenv("RAYFLOW_RUN_LEASE_S", "600")
    assert store.run_status(rec, now + 61) == "running"
    rec.status = "failed"
    assert store.run_status(rec, now + 10_000) == "failed"


@pytest.mark.integration
@pytest.mark.usefixtures("global_namespace")
def test_kill_the_driver_mid_foreach_then_resume(cli, cli_env, wait_for_done, datastore,
                                                 tmp_path):
    env = cli_env(datastore)
    cmd = [sys.executable, "-m", "rayflow_cli.main", "run", FLOW, "--width", "16",
           "--sleep", "0.4", "--marker_dir", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    origin, done = wait_for_done(datastore, "ResumableFlow", "work", 4)
    killed = Run(f"ResumableFlow/{origin}", datastore=datastore)
    assert killed.status == "running"  # its driver renews the heartbeat
    os.killpg(proc.pid, signal.SIGKILL)  # the driver we started, by its pid
    proc.wait(timeout=30)
    assert 4 <= len(done) < 16, done
    # Nobody will record its end: once the heartbeat is older than the lease (2 s here, 60 s
    # by default), readers call it interrupted, the CLI included.
    time.sleep(2.5)
    runs = cli("runs", "ResumableFlow", "--all", "--json",
               env={"RAYFLOW_RUN_LEASE_S": "2"}, check=0)
    assert json.loads(runs.stdout)[0] == json.loads(runs.stdout)[0] | {
        "id": origin, "status": "interrupted"}
    # `status` says so, and prints the command that continues it: the one used here.
    status = cli("status", f"ResumableFlow/{origin}", env={"RAYFLOW_RUN_LEASE_S": "2"},
                 check=0).stdout
    assert ": interrupted" in status and "driver stopped before the run ended" in status, status
    assert "Fix the flow" not in status  # nothing in the flow to fix
    (line,) = [ln for ln in status.splitlines() if ln.startswith("Resume with: ")]
    command = shlex.split(line.split("Resume with: ", 1)[1])
    assert command[:2] == ["rayflow", "resume"] and command[3:5] == ["--origin-run-id", origin]
    assert os.path.join(ROOT, command[2]) == FLOW, command
    rid_file = tmp_path / "rid"
    cli(*command[1:], "--run-id-file", str(rid_file), "--quiet", check=0)
    run = Run(f"ResumableFlow/{rid_file.read_text()}", datastore=datastore)
    assert run.successful and run.data.final == sum(2 * i for i in range(16))
    cloned = [t for t in run["work"] if t.origin_pathspec]
    assert len(cloned) >= len(done)
    assert Task(f"ResumableFlow/{run.id}/start/0", datastore=datastore).origin_pathspec
    audit = audit_run(datastore, "ResumableFlow", run.id)
    # Task ids are unique in the run: start is 0, split i is task i + 1.
    assert audit.status == "success" and audit.done["work"] == {str(i + 1) for i in range(16)}
    assert {t.origin_pathspec.rsplit("/", 1)[1] for t in cloned} <= \
        audit_run(datastore, "ResumableFlow", origin).done["work"]
