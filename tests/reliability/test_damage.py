"""Damaged data is an error that names the artifact, never a wrong value; resume repairs it.

Runs use the in-process executor (the datastore is what is under test here), so no Ray starts.
Each test breaks the datastore the way a disk or a person would: flipped bytes in a blob, a
deleted blob, a damaged copy already in place when a task writes the same content again.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rayflow import Run, default_namespace, namespace
from rayflow.datastore import FlowDataStore
from rayflow.datastore.artifact_store import DamagedArtifactError
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.resume import ResumeRequest
from rayflow.runtime.run_loop import RunLoop, RunOptions

FLOW = '''
import numpy as np
from rayflow import FlowSpec, Parameter, step


class DamageFlow(FlowSpec):
    n = Parameter("n", default=1000)

    @step
    def start(self):
        self.values = np.arange(self.n, dtype=np.float64)
        self.next(self.double)

    @step
    def double(self):
        self.doubled = self.values * 2
        self.label = "computed"  # small: kept inline in the task record
        self.next(self.end)

    @step
    def end(self):
        self.total = float(self.doubled.sum())
'''


@pytest.fixture(autouse=True)
def any_namespace():
    namespace(None)
    yield
    default_namespace()


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "damage_flow.py"
    path.write_text(FLOW)
    return str(path)


def run(flow_file, ds, resume=None):
    loaded = load_flow(flow_file)
    params = None if resume else resolve_parameters(loaded.cls, {})
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False, resume=resume)
    return RunLoop(loaded, params, opts).run()


def blob_file(ds: str, run_id: str, step: str, name: str) -> str:
    store = FlowDataStore.from_url(ds, "DamageFlow")
    (task_id,) = store.list_tasks(run_id, step)  # each step of DamageFlow has one task
    sha = store.read_task(run_id, step, task_id).artifacts[name].sha
    return os.path.join(ds, "DamageFlow", "data", sha[:2], sha)


def flip_bytes(path: str) -> None:
    with open(path, "r+b") as fh:
        fh.seek(-16, os.SEEK_END)
        chunk = fh.read(8)
        fh.seek(-16, os.SEEK_END)
        fh.write(bytes(b ^ 0xFF for b in chunk))


def test_a_flipped_byte_is_an_error_naming_the_artifact_task_and_datastore(flow_file, tmp_path):
    ds = str(tmp_path / "ds")
    s = run(flow_file, ds)
    assert s.successful
    path = blob_file(ds, s.run_id, "double", "doubled")
    flip_bytes(path)
    task = Run(s.pathspec, datastore=ds)["double"].task
    with pytest.raises(DamagedArtifactError) as err:
        _ = task.data.doubled
    message = str(err.value)
    assert f"doubled of task {task.pathspec}" in message and task.id == "1"
    assert ds in message and "does not match its hash" in message
    assert not os.path.exists(path), "the damaged copy was kept"


def test_a_deleted_blob_is_an_error_naming_the_artifact(flow_file, tmp_path):
    ds = str(tmp_path / "ds")
    s = run(flow_file, ds)
    os.remove(blob_file(ds, s.run_id, "start", "values"))
    with pytest.raises(DamagedArtifactError, match=r"values of task .*/start/0 cannot be "
                                                   r"read: .* is missing from datastore"):
        _ = Run(s.pathspec, datastore=ds)["start"].task.data.values


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_resume_reruns_a_task_whose_blob_is_damaged_and_repairs_it(flow_file, tmp_path, damage):
    ds = str(tmp_path / "ds")
    first = run(flow_file, ds)
    path = blob_file(ds, first.run_id, "double", "doubled")
    with open(path, "rb") as fh:
        good = fh.read()
    flip_bytes(path) if damage == "flip" else os.remove(path)
    second = run(flow_file, ds, ResumeRequest(origin_run_id=first.run_id))
    assert second.successful, second.failures
    store = FlowDataStore.from_url(ds, "DamageFlow")
    # start is intact and reused; double's blob is damaged, so it ran again, and so did end.
    assert store.read_task(second.run_id, "start", "0").origin_pathspec is not None
    (double,) = store.list_tasks(second.run_id, "double")
    assert store.read_task(second.run_id, "double", double).origin_pathspec is None
    assert second.tasks_cloned == 1
    with open(path, "rb") as fh:
        assert fh.read() == good, "the blob was not written again"
    end = Run(second.pathspec, datastore=ds)["end"].task
    assert end.data.total == float(np.arange(1000).sum() * 2)


def test_a_damaged_copy_in_place_is_written_again_not_trusted(tmp_path):
    store = FlowDataStore.from_url(str(tmp_path / "ds"), "DamageFlow")
    info = store.save_artifacts({"x": np.arange(500)})["x"]
    path = os.path.join(str(tmp_path / "ds"), "DamageFlow", "data", info.sha[:2], info.sha)
    flip_bytes(path)
    again = store.save_artifacts({"y": np.arange(500)})["y"]  # the same bytes, the same hash
    assert again.sha == info.sha
    assert (store.load_artifact(info) == np.arange(500)).all()


def test_a_damaged_inline_value_is_an_error_too(tmp_path):
    import base64
    import dataclasses

    store = FlowDataStore.from_url(str(tmp_path / "ds"), "DamageFlow")
    info = store.save_artifacts({"small": 41})["small"]
    assert info.inline is not None
    raw = bytearray(base64.b64decode(info.inline))
    raw[-1] ^= 0x01
    bad = dataclasses.replace(info, inline=base64.b64encode(bytes(raw)).decode())
    with pytest.raises(DamagedArtifactError, match="does not match its hash"):
        store.load_artifact(bad, "self.small of task DamageFlow/1/start/0")


def test_resume_reruns_a_task_whose_inline_value_was_replaced(flow_file, tmp_path):
    """Another valid pickle in place of a value kept in a task record, its hash left as it
    was: loading it is an error, and resume runs the task again rather than cloning the damage
    into the new run."""
    import base64
    import json
    import pickle

    ds = str(tmp_path / "ds")
    first = run(flow_file, ds)
    store = FlowDataStore.from_url(ds, "DamageFlow")
    (task_id,) = store.list_tasks(first.run_id, "double")
    record = os.path.join(ds, "DamageFlow", first.run_id, "double", task_id, "0.json")
    with open(record) as fh:
        data = json.load(fh)
    assert data["artifacts"]["label"]["inline"] is not None
    data["artifacts"]["label"]["inline"] = base64.b64encode(pickle.dumps("forged")).decode()
    with open(record, "w") as fh:
        json.dump(data, fh)
    with pytest.raises(DamagedArtifactError, match="Run `rayflow resume`"):
        _ = Run(first.pathspec, datastore=ds)["double"].task.data.label

    second = run(flow_file, ds, ResumeRequest(origin_run_id=first.run_id))
    assert second.successful, second.failures
    assert second.tasks_cloned == 1, "the damaged task (or what follows it) was cloned"
    (again,) = store.list_tasks(second.run_id, "double")
    assert store.read_task(second.run_id, "double", again).origin_pathspec is None
    assert Run(second.pathspec, datastore=ds)["double"].task.data.label == "computed"
    # A resume of the resumed run finds nothing damaged and clones every task.
    third = run(flow_file, ds, ResumeRequest(origin_run_id=second.run_id))
    assert third.tasks_cloned == 3 and third.successful


@pytest.mark.parametrize("clone_changed", [False, True])
def test_resume_reruns_a_step_whose_code_changed_and_what_follows(flow_file, tmp_path, capsys,
                                                                   clone_changed):
    """Every task records its step's code hash: a step edited since the origin run is named
    in one line and runs again, with the steps after it, unless --clone-changed asks for
    Metaflow's behaviour (clone it as the old code computed it)."""
    ds = str(tmp_path / "ds")
    first = run(flow_file, ds)
    with open(flow_file) as fh:
        source = fh.read()
    with open(flow_file, "w") as fh:
        fh.write(source.replace("self.values * 2", "self.values * 3 + 0"))
    capsys.readouterr()
    second = run(flow_file, ds, ResumeRequest(origin_run_id=first.run_id,
                                              clone_changed=clone_changed))
    err = capsys.readouterr().err
    assert second.successful, second.failures
    notes = [ln for ln in err.splitlines() if ln.startswith("Code changed since")]
    assert len(notes) == 1 and f"DamageFlow/{first.run_id} in step(s) double:" in notes[0], err
    total = Run(second.pathspec, datastore=ds)["end"].task.data.total
    if clone_changed:
        assert second.tasks_cloned == 3 and "--clone-changed" in notes[0]
        assert total == float(np.arange(1000).sum() * 2)  # as the old code computed it
    else:
        assert second.tasks_cloned == 1, "double (changed) or end (after it) was cloned"
        assert total == float(np.arange(1000).sum() * 3)
