"""One contract, three executors: the in-process InlineExecutor, the RayExecutor, and the
ActorPoolExecutor (every step on an actor pool, through `--with actor_pool`) must give the
same results for the same flows (dask's GetFunctionTestMixin idea)."""

from __future__ import annotations

import os

import pytest

from rayflow import Run, namespace

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def _opts(executor: str) -> dict:
    if executor == "pools":
        return {"executor": "ray", "with_decorators": ("actor_pool:max=2,idle_timeout=1",)}
    return {"executor": executor}


@pytest.fixture(params=["inline", "ray", "pools"])
def executor(request):
    namespace(None)
    yield request.param
    from rayflow import default_namespace

    default_namespace()


def test_branches(run_flow, datastore, executor):
    s = run_flow(os.path.join(EXAMPLES, "branches.py"), {"size": 6}, **_opts(executor))
    assert s.successful and Run(s.pathspec, datastore=datastore).data.total == 15


def test_nested_foreach(run_flow, datastore, executor):
    s = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 2, "shards": 4},
                 **_opts(executor))
    assert s.successful
    assert Run(s.pathspec, datastore=datastore).data.totals == {"region-0": 14, "region-1": 14}


def test_failure_is_reported_not_raised(run_flow, executor):
    s = run_flow("failing_flow.py", **_opts(executor))
    assert not s.successful
    # Task ids are unique in the run: start is 0, so split 3 of its foreach is task 4.
    assert s.failures[0].step == "work" and s.failures[0].task_id == "4"
    error = s.failures[0].error
    assert error.kind.value == "user" and error.retryable
    assert "split three is broken" in error.traceback


def test_merge_conflict(run_flow, executor):
    s = run_flow("merge_flow.py", {"mode": "conflict"}, **_opts(executor))
    assert not s.successful
    error = s.failures[0].error
    assert error.kind.value == "user" and not error.retryable
    assert error.type == "rayflow.exceptions.UnhandledInMergeArtifactsException"
    assert "differ between the inputs: x." in error.message


def test_same_hashes_on_both(run_flow, datastore, executor, tmp_path):
    """A deterministic flow gives the same artifact hashes however it runs."""
    s = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 2, "shards": 2},
                 **_opts(executor))
    task = Run(s.pathspec, datastore=datastore)["join_regions"].task
    assert len(task["totals"].sha) == 32
    other = run_flow(os.path.join(EXAMPLES, "foreach.py"), {"regions": 2, "shards": 2},
                     executor="ray" if executor == "inline" else "inline")
    task2 = Run(other.pathspec, datastore=datastore)["join_regions"].task
    assert task["totals"].sha == task2["totals"].sha
    assert {a.id: a.sha for a in task} == {a.id: a.sha for a in task2}
