"""A task record or a bundle that cannot be read (truncated, overwritten) counts as not done:
the client lists the other tasks and names the damaged file, and resume runs again exactly the
tasks it covered (not "resume to write it again", refused by resume with the same message)."""

from __future__ import annotations

import os

import pytest

from rayflow import Run, default_namespace, namespace
from rayflow.datastore import FlowDataStore
from rayflow.datastore.records import DamagedRecordWarning
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.resume import ResumeRequest
from rayflow.runtime.run_loop import RunLoop, RunOptions
from tests.reliability.audit import audit_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESUMABLE = os.path.join(ROOT, "tests", "flows", "resumable_flow.py")


@pytest.fixture(autouse=True)
def any_namespace():
    namespace(None)
    yield
    default_namespace()


def truncate(path: str) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)


def inline_run(ds: str, width: int = 6, resume=None):
    loaded = load_flow(RESUMABLE)
    params = None if resume else resolve_parameters(loaded.cls, {"width": str(width)})
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False, resume=resume)
    return RunLoop(loaded, params, opts).run()


def test_a_truncated_task_record_is_left_out_by_name_and_resume_runs_that_task(tmp_path):
    ds = str(tmp_path / "ds")
    first = inline_run(ds)
    damaged = os.path.join(ds, "ResumableFlow", first.run_id, "work", "3", "0.json")
    truncate(damaged)

    with pytest.warns(DamagedRecordWarning, match=r"work/3 attempt 0 \(.*work/3/0\.json\) is "
                                                  r"damaged .* `rayflow resume` runs them"):
        ids = [t.id for t in Run(first.pathspec, datastore=ds)["work"]]
    assert sorted(ids) == ["1", "2", "4", "5", "6"]

    with pytest.warns(DamagedRecordWarning):
        second = inline_run(ds, resume=ResumeRequest(origin_run_id=first.run_id))
    assert second.successful, second.failures
    run = Run(second.pathspec, datastore=ds)
    rerun = [t.index for t in run["work"] if t.origin_pathspec is None]
    assert rerun == [2], "exactly the split whose record was damaged runs again"
    assert second.tasks_cloned == 1 + 5  # start and the other splits
    assert run.data.final == sum(2 * i for i in range(6))


@pytest.mark.integration
def test_a_truncated_bundle_is_left_out_by_name_and_resume_runs_its_tasks(run_flow, datastore):
    first = run_flow(RESUMABLE, {"width": 60})
    store = FlowDataStore.from_url(datastore, "ResumableFlow")
    names = store.bundles.names(first.run_id, "work")
    assert names, "the splits were not bundled: nothing to damage"
    bundle = max(names, key=lambda n: int(n.split("~")[2]))
    covered = {r.task_id for r in store.bundles.read(first.run_id, "work", bundle)}
    truncate(os.path.join(datastore, "ResumableFlow", first.run_id, "work", "_bundles", bundle))

    with pytest.warns(DamagedRecordWarning, match=rf"bundle {bundle}.*_bundles/{bundle}\) is "
                                                  r"damaged"):
        listed = {t.id for t in Run(first.pathspec, datastore=datastore)["work"]}
    assert listed == {str(i + 1) for i in range(60)} - covered

    with pytest.warns(DamagedRecordWarning):
        second = run_flow(RESUMABLE, None, resume=ResumeRequest(origin_run_id=first.run_id))
    assert second.successful, second.failures
    run = Run(second.pathspec, datastore=datastore)
    origin_ids = {t.origin_pathspec.rsplit("/", 1)[1] for t in run["work"] if t.origin_pathspec}
    assert origin_ids == listed, "exactly the bundle's tasks run again"
    assert run.data.final == sum(2 * i for i in range(60))
    assert audit_run(datastore, "ResumableFlow", second.run_id).status == "success"
