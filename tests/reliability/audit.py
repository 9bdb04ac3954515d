"""What a fault test asserts about a run once the dust settles, read straight from the
datastore (not through the runtime that was just broken):

- the run's status as every reader sees it;
- the set of finished tasks of every step;
- exactly one committed success record per finished task (a DONE marker, or one success in
  the step's bundles), never two;
- every blob of every finished task is there and matches its content hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from rayflow.datastore import FlowDataStore
from rayflow.datastore.cas import blob_hash
from rayflow.datastore.flow_datastore import DONE_MARKER


@dataclass
class Audit:
    status: str
    done: dict[str, set[str]]     # step -> finished task ids
    blobs: int                    # blobs checked


def audit_run(ds_url: str, flow: str, run_id: str) -> Audit:
    ds = FlowDataStore.from_url(ds_url, flow)
    rec = ds.read_run(run_id)
    assert rec is not None, f"no run record for {flow}/{run_id}"
    done: dict[str, set[str]] = {}
    checked = 0
    for step in ds.list_steps(run_id):
        commits: dict[str, int] = {}
        for name in ds.bundles.names(run_id, step):
            for r in ds.bundles.read(run_id, step, name):
                if r.status == "success":
                    commits[r.task_id] = commits.get(r.task_id, 0) + 1
        for task_id in ds._task_dirs(run_id, step):
            if ds.storage.exists(f"{ds.task_path(run_id, step, task_id)}/{DONE_MARKER}"):
                commits[task_id] = commits.get(task_id, 0) + 1
        twice = sorted(t for t, n in commits.items() if n > 1)
        assert not twice, f"tasks of {step} committed more than once: {twice}"
        records = ds.done_records(run_id, step)
        assert set(records) == set(commits), (step, set(records) ^ set(commits))
        for task_id, task in records.items():
            for name, info in task.artifacts.items():
                if info.inline is not None:
                    continue
                data = ds.storage.get(ds.cas.blob_path(info.sha))
                assert blob_hash(data) == info.sha, \
                    f"blob of {name} of {flow}/{run_id}/{step}/{task_id} does not verify"
                checked += 1
        done[step] = set(records)
    return Audit(ds.run_status(rec), done, checked)
