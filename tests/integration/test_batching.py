"""Automatic batching of tiny foreach splits keeps every split's own identity."""

from __future__ import annotations

import os

import pytest

from rayflow import Run, Task
from rayflow.datastore import FlowDataStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]



def _bundles(datastore, run_id, step):
    folder = os.path.join(datastore, "BatchingFlow", run_id, step, "_bundles")
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_batched_splits_retry_catch_and_client(run_flow, datastore, task_at):
    s = run_flow("batching_flow.py", {"width": 400, "flaky_at": 250})
    assert s.successful, s.failures
    assert _bundles(datastore, s.run_id, "work"), "tiny splits were not batched"
    run = Run(s.pathspec, datastore=datastore)
    assert run["join"].task.data.total == 3 * sum(range(400))
    works = list(run["work"])
    assert len(works) == 400 and all(t.successful for t in works)
    flaky = task_at(run, "work", 250)
    assert flaky.data.attempt == 1 and flaky.current_attempt == 1
    some = task_at(run, "work", 123)
    assert Task(some.pathspec, datastore=datastore).index == 123
    assert some.data.out == 369 and some.index == 123 and some.data.attempt == 0
    guarded = run["join_guarded"].task.data
    assert guarded.errors == ["builtins.KeyError: 'seven'"]
    assert guarded.value_sum == sum(range(50)) - 7


def test_a_failing_split_does_not_lose_its_batch_mates(run_flow, datastore):
    s = run_flow("batching_flow.py", {"width": 400, "fail_at": 300})
    assert not s.successful
    # Split 300 of start's foreach: task 301 (start is task 0).
    assert [(f.step, f.task_id, f.attempt) for f in s.failures] == [("work", "301", 1)]
    ds = FlowDataStore.from_url(datastore, "BatchingFlow")
    done = ds.done_task_ids(s.run_id, "work")
    assert "301" not in done
    # Every split that was submitted alongside it (in the batch of its first attempt) finished
    # and is on record; nothing else is recorded as done.
    batches = [ds.bundles.read(s.run_id, "work", n) for n in ds.bundles.names(s.run_id, "work")]
    mates = next(b for b in batches if any(r.task_id == "301" and r.attempt == 0 for r in b))
    assert len(mates) > 1
    assert {r.task_id for r in mates if r.task_id != "301"} <= done
    assert all(r.status == "success" for r in mates if r.task_id != "301")
    recorded = {r.task_id for b in batches for r in b if r.status == "success"}
    recorded |= {t for t in ds.list_tasks(s.run_id, "work") if ds.storage.exists(
        f"{ds.task_path(s.run_id, 'work', t)}/DONE")}
    assert done == recorded
    failed = ds.read_task(s.run_id, "work", "301")
    assert failed.status == "failed" and "always fails" in failed.exception["message"]


def test_resources_chosen_per_split_from_its_item(run_flow, datastore):
    s = run_flow("dynamic_resources_flow.py")
    assert s.successful, s.failures
    seen = Run(s.pathspec, datastore=datastore)["join"].task.data.seen
    assert seen == {"small": 0, "big": 1, "huge": 2, "tiny": 0}
