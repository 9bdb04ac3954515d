"""End-to-end runs on a real Ray: artifacts through branches, foreach and joins, parameters,
decorators, merge_artifacts, GPU scheduling, and the client reading what the runs wrote."""

from __future__ import annotations

import os

import pytest

from rayflow import Flow, Run, Task
from rayflow.exceptions import StepFailed
from rayflow.runtime.errors import raise_for_failures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]



def test_hello_runs_and_client_reads_it(run_flow, datastore):
    s = run_flow(os.path.join(EXAMPLES, "hello.py"), {"name": "Ray"})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run.successful and run.finished
    assert run.data.greeting == "Hello, Ray!"
    assert run["hello"].task.data.greeting == "Hello, Ray!"
    assert "Hello, Ray! from HelloFlow/" in run["hello"].task.stdout
    assert Flow("HelloFlow", datastore=datastore).latest_run.id == s.run_id
    assert Task(f"{s.pathspec}/start/0", datastore=datastore)["greeting"].data == "Hello, Ray!"


def test_branches_join_and_merge(run_flow, datastore):
    s = run_flow(os.path.join(EXAMPLES, "branches.py"), {"size": 10})
    assert s.successful, s.failures
    data = Run(s.pathspec, datastore=datastore).data
    assert data.total == 45 and data.unit == "count"
    join = Run(s.pathspec, datastore=datastore)["join"].task
    assert sorted(p.pathspec.split("/")[2] for p in join.parent_tasks) == ["sum_even", "sum_odd"]
    # Lineage: what the join read from each input, by hash.
    reads = join.lineage["inputs"]
    run = Run(s.pathspec, datastore=datastore)
    even, odd = run["sum_even"].task, run["sum_odd"].task
    assert even.id != odd.id                      # task ids are unique in the run
    assert reads[f"sum_even/{even.id}:even"] == even["even"].sha
    assert f"sum_odd/{odd.id}:odd" in reads


def test_nested_foreach(run_flow, datastore, task_at):
    s = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 3, "shards": 5})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run.data.totals == {f"region-{i}": 30 for i in range(3)}
    shard_tasks = list(run["shard"])
    assert len(shard_tasks) == 15
    t = task_at(run, "shard", 2, 4)
    assert t.data.value == 16 and t.index == 4
    assert len({t.id for t in shard_tasks}) == 15


def test_split_gets_only_its_item(run_flow, datastore, task_at):
    """A split never loads the parent's list unless it asks for it."""
    s = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 2, "shards": 3})
    run = Run(s.pathspec, datastore=datastore)
    task = task_at(run, "shard", 1, 2)
    rec = task.lineage
    assert "shard_ids" not in rec["inputs"] and "region_names" not in rec["inputs"]
    # ... yet its lineage names the item it got: the foreach variable, its hash, the index.
    region = task_at(run, "region", 1)
    assert rec["inputs"]["shard_ids[2]"] == region["shard_ids"].sha


def test_arrow_artifacts_stay_arrow(run_flow, datastore):
    s = run_flow("arrow_flow.py")
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run.data.type_name == "Table"
    assert run.data.rows == 12
    assert run.data.sum_b == float(sum(range(100_000)) * 2)
    art = run["start"].task["table"]
    assert art.type.endswith("Table") and art.encoding.startswith("arrow")


def test_parameters_and_current(run_flow, datastore, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("included text")
    s = run_flow("params_flow.py", {"alpha": "0.25", "count": "7", "flag": "true",
                                    "config": '{"a": [1, 2]}', "must": "5", "notes": str(notes)})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    seen = run["start"].task.data.seen
    assert seen == {"alpha": 0.25, "count": 7, "label": "x", "flag": True,
                    "config": {"a": [1, 2]}, "must": 5, "notes": "included text"}
    ctx = run["start"].task.data.ctx
    assert ctx["flow_name"] == "ParamsFlow" and ctx["run_id"] == s.run_id
    assert ctx["pathspec"] == f"{s.pathspec}/start/0" and ctx["is_running_flow"] is True
    assert run.data.alpha_in_end == 0.25 and run.data.alpha == 0.25


def test_decorators_retry_catch_timeout_environment(run_flow, datastore):
    s = run_flow("decorators_flow.py")
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run["start"].task.data.attempts_seen == 2
    problem = run["caught"].task.data.problem
    assert "KeyError" in problem.type and "boom" in problem.exception
    assert run["slow"].task.data.slow_attempt == 1  # attempt 0 timed out, then retried
    assert run["env"].task.data.env_value == "hello-env"
    assert run.data.env_after is None


def test_failing_split_fails_the_run_with_user_traceback(run_flow, datastore, task_at):
    s = run_flow("failing_flow.py")
    assert not s.successful
    with pytest.raises(StepFailed) as info:
        raise_for_failures(s)
    msg = str(info.value)
    assert "split three is broken" in msg and "failing_flow.py" in msg
    assert "work" in msg and "rayflow resume" in msg
    run = Run(s.pathspec, datastore=datastore)
    assert not run.successful
    failed = task_at(run, "work", 3)
    assert not failed.successful and "split three is broken" in str(failed.exception)


@pytest.mark.parametrize("mode,ok", [("agree", True), ("conflict", False),
                                      ("exclude", True), ("include", True),
                                      ("override", True)])
def test_merge_artifacts(run_flow, datastore, mode, ok):
    s = run_flow("merge_flow.py", {"mode": mode})
    assert s.successful is ok, s.failures
    if not ok:
        msg = s.failures[0].error.message
        assert "Step 'join' cannot merge these artifacts" in msg
        assert "differ between the inputs: x." in msg
        return
    join = Run(s.pathspec, datastore=datastore)["join"].task
    names = {a.id for a in join}
    assert "shared" in names or mode == "include"
    if mode == "agree":
        assert join.data.x == 1 and join.data.only_a == "a"
    if mode == "exclude":
        assert "x" not in names
    if mode == "include":
        assert join.data.only_a == "a" and "shared" not in names
    if mode == "override":
        assert join.data.x == 99


def test_gpu_scheduling_with_fake_gpus(run_flow, datastore):
    s = run_flow("gpu_flow.py")
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert len(run["start"].task.data.gpu_ids) == 1
    assert run["cpu_only"].task.data.cpu_gpu_ids == []


def test_inline_executor_gives_the_same_results(run_flow, datastore):
    s = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 2, "shards": 3},
                 executor="inline")
    assert s.successful
    assert Run(s.pathspec, datastore=datastore).data.totals == {"region-0": 5, "region-1": 5}
