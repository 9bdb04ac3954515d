"""An artifact larger than Ray's object store, and a client reading a run while it is written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from rayflow import Run
from tests.reliability.audit import audit_run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N = 25_000_000  # int64: 200 MB, over twice the 80 MB object store below

BIG_FLOW = f'''
import numpy as np
from rayflow import FlowSpec, step


class BigFlow(FlowSpec):
    @step
    def start(self):
        self.big = np.arange({N}, dtype=np.int64)
        self.next(self.middle)

    @step
    def middle(self):
        self.total = int(self.big.sum())
        self.big[0] = 7             # changed in place: a new artifact of this task
        self.next(self.end)

    @step
    def end(self):
        assert self.big[0] == 7 and self.big[-1] == {N - 1}
        self.checked = True
'''

DRIVER = '''
import sys
import ray
ray.init(address="local", num_cpus=2, object_store_memory=80 * 1024 * 1024,
         include_dashboard=False, log_to_driver=False)
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.run_loop import RunLoop, RunOptions
loaded = load_flow(sys.argv[1])
s = RunLoop(loaded, resolve_parameters(loaded.cls, {}),
           RunOptions(datastore_url=sys.argv[2], progress=False)).run()
print("RUN", s.run_id, s.status)
'''


def test_an_artifact_larger_than_the_object_store_moves_and_is_checkpointed(tmp_path):
    flow = tmp_path / "big_flow.py"
    flow.write_text(BIG_FLOW)
    ds = str(tmp_path / "ds")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER), str(flow), ds],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RUN ")]
    _, run_id, status = line.split()
    assert status == "success", proc.stderr[-3000:]
    audit = audit_run(ds, "BigFlow", run_id)
    assert audit.status == "success"
    assert audit.done == {"start": {"0"}, "middle": {"1"}, "end": {"2"}}
    assert audit.blobs >= 2            # start's array and middle's changed one, both verified
    run = Run(f"BigFlow/{run_id}", datastore=ds)
    assert run.data.checked and run["middle"].task.data.total == N * (N - 1) // 2
    first = run["start"].task.data.big
    assert first[0] == 0 and len(first) == N  # the parent's value, untouched by middle


def test_a_client_reading_a_run_while_it_is_written_sees_only_whole_tasks(
        cli_env, wait_for_done, tmp_path):
    ds = str(tmp_path / "ds")
    width = 12
    proc = subprocess.Popen(
        [sys.executable, "-m", "rayflow_cli.main", "run", "tests/flows/resumable_flow.py",
         "--width", str(width), "--sleep", "0.3", "--marker_dir", str(tmp_path), "--quiet"],
        cwd=ROOT, env=cli_env(ds), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_id, _ = wait_for_done(ds, "ResumableFlow", "start", 1)
    seen_done: set[str] = set()
    reads = 0
    while True:
        ended = proc.poll() is not None
        run = Run(f"ResumableFlow/{run_id}", datastore=ds)
        done_now = set()
        for task in run["work"] if "work" in run else []:
            if not task.successful:
                assert task.id not in seen_done, f"task {task.id} was done, then not"
                continue
            out, blob = task["out"].data, task["blob"].data
            assert blob == f"result-{out // 2}-" + "y" * 400, (task.id, out)
            done_now.add(task.id)
            reads += 1
        assert seen_done <= done_now
        seen_done = done_now
        # Never failed or interrupted on the way, whenever it is read.
        assert run.status in ("running", "success")
        if ended:
            break
        time.sleep(0.1)
    assert proc.returncode == 0, proc.stderr
    assert reads > width, "the client must have read the run while it was written"
    assert seen_done == {str(i + 1) for i in range(width)}  # start is 0: split i is i + 1
    assert Run(f"ResumableFlow/{run_id}", datastore=ds).finished
    audit = audit_run(ds, "ResumableFlow", run_id)
    assert audit.status == "success" and audit.done["work"] == seen_done
