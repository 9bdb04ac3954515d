"""FlowDataStore.step_records (one pass over a step) gives every task the record and DONE state
that the per-task reads give, for every way a task's records can be laid out."""

from __future__ import annotations

from rayflow.datastore import FlowDataStore, TaskRecord


def _rec(task_id, attempt=0, status="success", value=0):
    from rayflow.datastore.records import ArtifactInfo

    return TaskRecord(flow="F", run_id="1", step="s", task_id=task_id, attempt=attempt,
                      status=status, artifacts={"x": ArtifactInfo(
                          sha=f"{value:032x}", size=1, type="builtins.int", encoding="pickle",
                          inline=None)})


def test_step_records_matches_the_per_task_reads(tmp_path):
    ds = FlowDataStore.from_url(str(tmp_path / "ds"), "F")
    ds.write_tasks([_rec(str(i), value=i) for i in range(5)], bundle=True)      # bundled, DONE
    ds.write_tasks([_rec("5", 0, "failed"), _rec("6", 0, "failed")], bundle=True)
    ds.write_task(_rec("5", 1, "success", 50))          # a bundled failure, then a retry
    ds.write_task(_rec("6", 1, "failed", 60))           # ... that failed again
    ds.write_task(_rec("7", 0, "success", 7))           # a task of its own, DONE
    ds.write_task(_rec("8", 0, "failed"))
    ds.write_task(_rec("8", 1, "failed", 81))           # failed twice, no DONE
    ds.write_tasks([_rec("9", 2, "failed", 92), _rec("10", 0, "success", 10)], bundle=True)
    ds.write_task(_rec("9", 1, "failed", 91))           # the bundle holds the later attempt
    index = ds.step_records("1", "s")
    expected = {t: (ds.read_task("1", "s", t), ds.is_done("1", "s", t))
                for t in ds.list_tasks("1", "s")}
    assert set(index) == set(expected) == {str(i) for i in range(11)}
    for task_id, (rec, done) in expected.items():
        got, got_done = index[task_id]
        assert (got.attempt, got.status, got.artifacts, got_done) == \
            (rec.attempt, rec.status, rec.artifacts, done), task_id
