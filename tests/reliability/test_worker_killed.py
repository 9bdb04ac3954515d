"""A Ray worker SIGKILLed from outside in the middle of a foreach: Ray runs its batch again
(the worker left no fatal-signal report, so this is not the step's own crash), no split is
lost, and none is recorded twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from rayflow import Run
from tests.reliability.audit import audit_run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

WIDTH = 6
FLOW = '''
import os
import time
from rayflow import FlowSpec, Parameter, step


class KilledWorkerFlow(FlowSpec):
    marker_dir = Parameter("marker_dir", default="")

    @step
    def start(self):
        self.items = list(range(%d))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        # One file per attempt of a split: the test kills the worker that runs split 2.
        with open(os.path.join(self.marker_dir, f"{self.input}.{time.monotonic_ns()}"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(1.0)
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = sorted(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
''' % WIDTH


def _attempts(marker_dir, split: int) -> list[int]:
    return [int(open(os.path.join(marker_dir, name)).read() or 0)
            for name in sorted(os.listdir(marker_dir)) if name.split(".")[0] == str(split)]


def test_a_worker_killed_mid_foreach_loses_no_split_and_records_none_twice(cli_env, tmp_path):
    flow = tmp_path / "killed_worker_flow.py"
    flow.write_text(FLOW)
    markers = tmp_path / "markers"
    markers.mkdir()
    ds = str(tmp_path / "ds")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rayflow_cli.main", "run", str(flow), "--marker_dir",
         str(markers), "--quiet", "--run-id-file", str(tmp_path / "rid")],
        cwd=tmp_path, env=cli_env(ds), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.time() + 120
    while not _attempts(markers, 2) and time.time() < deadline:
        time.sleep(0.05)
    [pid] = _attempts(markers, 2)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)   # a worker of the Ray this test session started
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    run_id = (tmp_path / "rid").read_text()
    audit = audit_run(ds, "KilledWorkerFlow", run_id)
    assert audit.status == "success"
    # Task ids are unique in the run: start 0, the splits 1..WIDTH, then join and end.
    assert audit.done == {"start": {"0"}, "work": {str(i + 1) for i in range(WIDTH)},
                          "join": {str(WIDTH + 1)}, "end": {str(WIDTH + 2)}}
    run = Run(f"KilledWorkerFlow/{run_id}", datastore=ds)
    assert run.data.outs == [10 * i for i in range(WIDTH)]
    again = _attempts(markers, 2)
    assert len(again) == 2 and again[1] != pid, "split 2 must have run again elsewhere"
