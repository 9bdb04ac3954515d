"""A step that calls sys.exit fails as a step; two runs started at once on one datastore keep
apart."""

from __future__ import annotations

import os
import subprocess
import sys

from rayflow import Run, namespace
from rayflow.datastore import FlowDataStore
from rayflow.parameters import resolve_parameters
from rayflow.runtime.errors import ErrorKind
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.run_loop import RunLoop, RunOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXIT_FLOW = '''
import sys
from rayflow import FlowSpec, step


class ExitFlow(FlowSpec):
    @step
    def start(self):
        print("about to leave")
        sys.exit(3)
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def test_sys_exit_in_a_step_fails_that_step_with_its_logs(tmp_path):
    path = tmp_path / "exit_flow.py"
    path.write_text(EXIT_FLOW)
    loaded = load_flow(str(path))
    ds = str(tmp_path / "ds")
    s = RunLoop(loaded, resolve_parameters(loaded.cls, {}),
               RunOptions(datastore_url=ds, executor="inline", progress=False)).run()
    assert s.status == "failed"
    [failure] = s.failures
    assert failure.step == "start" and failure.error.kind is ErrorKind.USER
    assert failure.error.type == "builtins.SystemExit" and failure.error.message == "3"
    store = FlowDataStore.from_url(ds, "ExitFlow")
    rec = store.read_task(s.run_id, "start", "0")
    assert rec.status == "failed" and rec.exception["type"] == "builtins.SystemExit"
    namespace(None)
    assert "about to leave" in Run(s.pathspec, datastore=ds)["start"].task.stdout


def test_two_runs_started_at_once_on_one_datastore_keep_apart(tmp_path):
    ds = str(tmp_path / "ds")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    flow = os.path.join(ROOT, "examples", "foreach.py")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "rayflow_cli.main", "run", flow, "--executor", "inline",
         "--quiet", "--datastore", ds, "--regions", str(regions), "--shards", "3",
         "--run-id-file", str(tmp_path / f"rid{regions}")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for regions in (2, 3)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    namespace(None)
    ids = {r: (tmp_path / f"rid{r}").read_text() for r in (2, 3)}
    assert ids[2] != ids[3]
    for regions, run_id in ids.items():
        run = Run(f"ForeachFlow/{run_id}", datastore=ds)
        assert run.successful
        assert sorted(run.data.totals) == [f"region-{i}" for i in range(regions)]
        assert len(list(run["shard"])) == regions * 3  # no task of the other run in it


def test_resuming_a_run_that_is_still_running_warns_and_names_its_driver(tmp_path):
    import socket
    import time

    ds = str(tmp_path / "ds")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    env["RAYFLOW_DATASTORE"] = ds
    flow = os.path.join(ROOT, "tests", "flows", "resumable_flow.py")
    common = ["--executor", "inline", "--quiet"]
    origin = subprocess.Popen(
        [sys.executable, "-m", "rayflow_cli.main", "run", flow, "--width", "2", "--sleep",
         "60", "--marker_dir", str(tmp_path), "--run-id-file", str(tmp_path / "rid"),
         *common], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    resume = None
    try:
        deadline = time.time() + 60
        while not (tmp_path / "rid").exists() and time.time() < deadline:
            time.sleep(0.2)
        run_id = (tmp_path / "rid").read_text()
        resume = subprocess.Popen(
            [sys.executable, "-m", "rayflow_cli.main", "resume", flow, "--origin-run-id",
             run_id, *common], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        import threading

        timer = threading.Timer(60, resume.kill)  # a resume that never warns ends the loop
        timer.daemon = True
        timer.start()
        lines = []
        for line in resume.stderr:  # the warning comes right after "Resuming ..."
            lines.append(line)
            if len(lines) > 1 and lines[-2].startswith("Resuming"):
                break
        warning = next((ln for ln in lines if "still running" in ln), "")
        assert warning.startswith(f"Warning: run ResumableFlow/{run_id} is still running"), \
            "".join(lines)
        assert f"pid {origin.pid} on {socket.gethostname()}" in warning
    finally:
        for proc in (resume, origin):
            if proc is not None:
                proc.kill()
                proc.communicate()
