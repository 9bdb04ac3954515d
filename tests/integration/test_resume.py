"""Resume: a broken run continues from its checkpoints, cloning finished tasks by reference."""

from __future__ import annotations

import os

import pytest

from rayflow import Run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = "tests/flows/resumable_flow.py"



def _blob_files(datastore: str) -> dict[str, float]:
    root = os.path.join(datastore, "ResumableFlow", "data")
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            out[path] = os.stat(path).st_mtime_ns
    return out


def test_resume_after_a_failed_split_clones_the_rest(cli, datastore, tmp_path, task_at):
    (tmp_path / "fail-5").write_text("")
    rid_file = tmp_path / "rid"
    failed = cli("run", FLOW, "--width", "8", "--marker_dir", str(tmp_path),
                 "--run-id-file", str(rid_file))
    assert failed.returncode == 1 and "split 5 was told to fail" in failed.stderr
    origin = rid_file.read_text()
    blobs_before = _blob_files(datastore)
    assert blobs_before
    os.remove(tmp_path / "fail-5")
    resumed = cli("resume", FLOW, "--run-id-file", str(rid_file), check=0)
    assert "cloned" in resumed.stderr
    new = rid_file.read_text()
    assert new != origin
    run = Run(f"ResumableFlow/{new}", datastore=datastore)
    assert run.successful and run.data.final == sum(2 * i for i in range(8))
    start = run["start"].task
    assert start.origin_pathspec == f"ResumableFlow/{origin}/start/0"
    origin_run = Run(f"ResumableFlow/{origin}", datastore=datastore)
    assert "split 5 was told to fail" in task_at(origin_run, "work", 5).stderr
    works = {t.index: t for t in run["work"]}
    assert sorted(works) == list(range(8))
    for i, task in works.items():
        if i == 5:
            assert task.origin_pathspec is None  # it ran again
        else:
            assert task.origin_pathspec == task_at(origin_run, "work", i).pathspec
            assert task.data.blob.startswith(f"result-{i}-")
            assert f"working on {i}" in task.stdout  # the origin's log
    assert run["join"].task.origin_pathspec is None
    # Cloning copied no bytes: every blob written before is untouched, and the only new blobs
    # are the artifacts of the split that ran again.
    blobs_after = _blob_files(datastore)
    for path, mtime in blobs_before.items():
        assert blobs_after[path] == mtime, f"{path} was written twice"
    assert len(blobs_after) - len(blobs_before) <= 1


def test_resume_from_a_step_reruns_it_and_downstream(cli, datastore, tmp_path):
    rid_file = tmp_path / "rid"
    cli("run", FLOW, "--width", "3", "--marker_dir", str(tmp_path),
        "--run-id-file", str(rid_file), check=0)
    origin = rid_file.read_text()
    cli("resume", FLOW, "join", "--origin-run-id", origin, "--run-id-file", str(rid_file),
        check=0)
    run = Run(f"ResumableFlow/{rid_file.read_text()}", datastore=datastore)
    assert run.successful
    assert all(t.origin_pathspec for t in run["work"])
    assert run["join"].task.origin_pathspec is None
    assert run["end"].task.origin_pathspec is None
