"""Checkpoints written beside the next step (issue 13).

A task hands its values to the object store first; its checkpoint is written while the next
steps run, and it is DONE only once that checkpoint is durable. The flows here patch, in their
own module (which every worker imports), the worker's `persist` function, so the test decides
what happens between a task's return and its checkpoint: it waits for the next step, or the
worker dies.
"""

from __future__ import annotations

import os

import pytest

from rayflow import Run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

# A start step that sets a 4 MB Arrow table (its encoding waits until the table is handed on),
# and a consume step that reads it. `HOOK` is what the worker does before writing start's
# checkpoint.
FLOW = '''
import os
import time

import pyarrow as pa
import pyarrow.compute as pc

from rayflow import FlowSpec, Parameter, step
import rayflow.runtime.worker as _batching

_real_persist = getattr(_batching, "_real_persist", _batching.persist)
_batching._real_persist = _real_persist
MARKERS = {}


def _mark(name):
    with open(os.path.join(MARKERS["dir"], name), "w") as fh:
        fh.write(str(time.time()))


def _seen(name):
    return os.path.exists(os.path.join(MARKERS["dir"], name))


def _persist(ds, ctx, specs, captured):
    step = specs[0].step if ctx.flow_name == "AsyncCheckpointFlow" else None
    MARKERS["dir"] = ctx.params.get("markers")
%(hook)s
    _real_persist(ds, ctx, specs, captured)
    _mark(f"durable-{step}-{specs[0].task_id}")


_batching.persist = _persist


class AsyncCheckpointFlow(FlowSpec):
    rows = Parameter("rows", default=500_000)
    markers = Parameter("markers", default="")

    @step
    def start(self):
        MARKERS["dir"] = self.markers
        self.table = pa.table({"x": pa.array(range(self.rows), pa.int64())})
        self.next(self.consume)

    @step
    def consume(self):
        MARKERS["dir"] = self.markers
        _mark("consume-started")
        self.n = self.table.num_rows
        self.total = pc.sum(self.table["x"]).as_py()
        self.next(self.end)

    @step
    def end(self):
        pass
'''

# The next step starts while start's checkpoint waits for it: without checkpoints beside the
# next step this would wait for ever (the hook gives up after 60 s and the test fails).
WAIT_FOR_CONSUME = '''
    if step == "start":
        deadline = time.time() + 60
        while not _seen("consume-started") and time.time() < deadline:
            time.sleep(0.01)
        _mark("start-saw-consume" if _seen("consume-started") else "start-gave-up")
'''

# The worker dies after start handed its table on (consume has begun) and before its
# checkpoint is written, once (the marker stays for the resume).
DIE_ONCE = '''
    if step == "start" and not _seen("died"):
        deadline = time.time() + 60
        while not _seen("consume-started") and time.time() < deadline:
            time.sleep(0.01)
        _mark("died")
        os._exit(1)
'''


def _write(tmp_path, hook: str):
    path = tmp_path / "async_checkpoint_flow.py"
    path.write_text(FLOW % {"hook": hook})
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return path, markers




def test_the_next_step_starts_before_the_checkpoint_is_written(cli_env, datastore, tmp_path):
    import subprocess
    import sys

    flow, markers = _write(tmp_path, WAIT_FOR_CONSUME)
    proc = subprocess.run(
        [sys.executable, "-m", "rayflow_cli.main", "run", str(flow), "--quiet",
         "--markers", str(markers), "--run-id-file", str(tmp_path / "rid")],
        cwd=tmp_path, env=cli_env(datastore), capture_output=True,
        text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert (markers / "start-saw-consume").exists()
    assert not (markers / "start-gave-up").exists()
    run = Run(f"AsyncCheckpointFlow/{(tmp_path / 'rid').read_text()}", datastore=datastore)
    assert run.successful
    consume = run["consume"].task
    assert consume.data.n == 500_000 and consume.data.total == sum(range(500_000))
    # The table's record has its hash (computed after it was handed on), and loads back.
    start = run["start"].task
    assert start.data.table.num_rows == 500_000
    info = start["table"]
    assert info.sha
    # consume was started before start was durable, yet it became DONE only after start did.
    started = float((markers / "consume-started").read_text())
    durable_start = float((markers / "durable-start-0").read_text())
    assert started < durable_start
    consume_durable = [p for p in os.listdir(markers) if p.startswith("durable-consume-")]
    [name] = consume_durable
    assert float((markers / name).read_text()) >= durable_start
    # consume's record names the table it read by its hash.
    assert consume["table"].sha == info.sha


def test_a_worker_that_dies_before_its_checkpoint_leaves_the_task_not_done(
        cli_env, datastore, tmp_path):
    import subprocess
    import sys

    flow, markers = _write(tmp_path, DIE_ONCE)
    env = cli_env(datastore)
    rid = tmp_path / "rid"
    failed = subprocess.run(
        [sys.executable, "-m", "rayflow_cli.main", "run", str(flow), "--quiet",
         "--markers", str(markers), "--run-id-file", str(rid)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert failed.returncode == 1, failed.stderr
    assert "checkpoint could not be written" in failed.stderr
    assert "rayflow resume" in failed.stderr
    origin = rid.read_text()
    run = Run(f"AsyncCheckpointFlow/{origin}", datastore=datastore)
    assert not run.successful
    from rayflow.datastore import FlowDataStore

    ds = FlowDataStore.from_url(datastore, "AsyncCheckpointFlow")
    assert not ds.is_done(origin, "start", "0")
    # Whatever consume did, it was not recorded as done before its parent.
    assert not any(ds.is_done(origin, "consume", t) for t in ds.list_tasks(origin, "consume"))

    resumed = subprocess.run(
        [sys.executable, "-m", "rayflow_cli.main", "resume", str(flow), "--quiet",
         "--origin-run-id", origin, "--run-id-file", str(rid)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    new = Run(f"AsyncCheckpointFlow/{rid.read_text()}", datastore=datastore)
    assert new.successful
    assert new["start"].task.origin_pathspec is None  # it ran again
    assert new["consume"].task.data.total == sum(range(500_000))


JOIN_FLOW = '''
import os
import time

import numpy as np

from rayflow import FlowSpec, Parameter, step
import rayflow.runtime.worker as _batching

_real_persist = getattr(_batching, "_real_persist", _batching.persist)
_batching._real_persist = _real_persist


def _persist(ds, ctx, specs, captured):
    body = ctx.flow_name == "JoinWaitsFlow" and specs[0].step == "body"
    MARKERS = ctx.params.get("markers")
    if body:
        time.sleep(0.5)
    _real_persist(ds, ctx, specs, captured)
    if body:
        for spec in specs:
            open(os.path.join(MARKERS, f"body-{spec.task_id}"), "w").close()


_batching.persist = _persist


class JoinWaitsFlow(FlowSpec):
    markers = Parameter("markers", default="")

    @step
    def start(self):
        self.base = np.arange(300_000, dtype=np.int64)   # 2.4 MB: handed on before encoding
        self.parts = [0, 1, 2, 3]
        self.next(self.body, foreach="parts")

    @step
    def body(self):
        self.vec = self.base * (self.input + 1)
        self.next(self.join)

    @step
    def join(self, inputs):
        done = {n for n in os.listdir(self.markers) if n.startswith("body-")}
        self.durable_before_join = len(done)
        self.sums = sorted(int(i.vec.sum()) for i in inputs)
        self.merge_artifacts(inputs, include=["base"])
        self.next(self.end)

    @step
    def end(self):
        self.total = int(self.base.sum())
'''


def test_a_join_runs_only_once_its_inputs_are_durable(run_flow, tmp_path, monkeypatch):
    import rayflow.runtime.worker as batching

    monkeypatch.setattr(batching, "persist", batching.persist)  # the flow patches it here too
    markers = tmp_path / "markers"
    markers.mkdir()
    flow = tmp_path / "join_waits_flow.py"
    flow.write_text(JOIN_FLOW)
    summary = run_flow(str(flow), {"markers": str(markers)})
    assert summary.successful, summary.failures
    run = Run(summary.pathspec, datastore=summary.datastore)
    join = run["join"].task
    assert join.data.durable_before_join == 4
    base = sum(range(300_000))
    assert join.data.sums == [base * k for k in (1, 2, 3, 4)]
    assert run["end"].task.data.total == base
    # Every task of the finished run is durable, with a hash for each artifact.
    for step in run:
        for task in step:
            assert task.successful
            assert all(a.sha for a in task.artifacts), task.pathspec
