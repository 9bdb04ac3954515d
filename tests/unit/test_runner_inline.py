"""The runner, scheduler, resume and batching driven by the in-process executor: no Ray is
started by any test here (each one checks)."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWS = os.path.join(ROOT, "tests", "flows")
EXAMPLES = os.path.join(ROOT, "examples")

from rayflow import Run, default_namespace, namespace  # noqa: E402
from rayflow.datastore import FlowDataStore  # noqa: E402
from rayflow.parameters import resolve_parameters  # noqa: E402
from rayflow.runtime.errors import ErrorKind, raise_for_failures  # noqa: E402
from rayflow.runtime.flowfile import load_flow  # noqa: E402
from rayflow.runtime.inline_executor import InlineExecutor  # noqa: E402
from rayflow.runtime.resume import ResumeRequest  # noqa: E402
from rayflow.runtime.run_loop import RunLoop, RunOptions  # noqa: E402


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def no_ray_and_any_namespace():
    """Every test here must leave Ray as it found it: not started (when the integration tests
    have started one for the session, there is nothing to check)."""
    namespace(None)
    before = _ray_running()
    yield
    default_namespace()
    assert before or not _ray_running(), "an inline run started Ray"


def run(path, datastore, params=None, **opts):
    loaded = load_flow(path if os.path.isabs(path) else os.path.join(FLOWS, path))
    values = resolve_parameters(loaded.cls, {k: str(v) for k, v in (params or {}).items()})
    options = RunOptions(datastore_url=datastore, executor="inline", progress=False, **opts)
    return RunLoop(loaded, values, options).run()


def test_nested_foreach_inline(tmp_path):
    ds = str(tmp_path / "ds")
    s = run(os.path.join(EXAMPLES, "foreach.py"), ds, {"regions": 2, "shards": 3})
    assert s.successful and s.tasks_done == 1 + 2 + 6 + 2 + 1 + 1
    assert Run(s.pathspec, datastore=ds).data.totals == {"region-0": 5, "region-1": 5}
    assert FlowDataStore.from_url(ds, "ForeachFlow").read_run(s.run_id).status == "success"


def test_failure_is_a_typed_task_error(tmp_path):
    s = run("failing_flow.py", str(tmp_path / "ds"))
    assert s.status == "failed"
    [failure] = s.failures
    # Task ids are unique in the run: start is 0, so split 3 of its foreach is task 4.
    assert (failure.step, failure.task_id, failure.attempt) == ("work", "4", 0)
    assert failure.error.kind is ErrorKind.USER and failure.error.retryable
    assert failure.error.type == "builtins.RuntimeError"
    assert "split three is broken" in failure.error.traceback
    with pytest.raises(Exception, match="Fix the step, then continue the run with: rayflow "
                                        "resume .*failing_flow.py --origin-run-id"):
        raise_for_failures(s)


def test_a_secrets_provider_failing_in_the_task_is_retried_and_caught(tmp_path):
    """As Metaflow reads @secrets in task_pre_step: a provider's failure there fails the task
    like the step's own exception, so @retry runs it again and @catch catches it."""
    from rayflow.plugins.secrets import spec

    ds = str(tmp_path / "ds")
    try:
        s = run("secrets_flaky_flow.py", ds)
    finally:  # the flow registered its provider in this process: other tests list them
        spec._PROVIDERS.pop("flaky", None)
    assert s.successful, s.failures and s.failures[0].error.describe()
    run_ = Run(s.pathspec, datastore=ds)
    retried = run_["retried"].task
    assert retried.data.seen == "read on attempt 1" and retried.current_attempt == 1
    caught = run_["caught_step"].task
    assert "reached" not in caught and "backend for other timed out" in str(caught.data.failure)


def test_resume_clones_what_finished_and_reruns_the_rest(tmp_path):
    ds = str(tmp_path / "ds")
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "fail-2").touch()
    first = run("resumable_flow.py", ds, {"width": 5, "marker_dir": str(markers)})
    assert not first.successful
    (markers / "fail-2").unlink()
    loaded = load_flow(os.path.join(FLOWS, "resumable_flow.py"))
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False,
                      resume=ResumeRequest(origin_run_id=first.run_id))
    second = RunLoop(loaded, None, opts).run()
    assert second.successful
    # start and the four splits that finished are cloned; split 2, join and end run again.
    assert second.tasks_cloned == 1 + 4
    store = FlowDataStore.from_url(ds, "ResumableFlow")
    assert store.read_run(second.run_id).origin_run_id == first.run_id
    # Split i is task i + 1 (start is 0) in both runs; the clone keeps where it came from.
    split = store.read_task(second.run_id, "work", "1")
    assert split.origin_pathspec == f"ResumableFlow/{first.run_id}/work/1"
    assert split.foreach_stack[0][1] == 0
    assert store.read_task(second.run_id, "work", "3").origin_pathspec is None
    assert Run(second.pathspec, datastore=ds).data.final == sum(2 * i for i in range(5))


def test_resume_of_the_latest_run_in_any_namespace(tmp_path):
    ds = str(tmp_path / "ds")
    first = run("failing_flow.py", ds)
    loaded = load_flow(os.path.join(FLOWS, "failing_flow.py"))
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False,
                      resume=ResumeRequest(namespace="*"))
    runner = RunLoop(loaded, None, opts)
    second = runner.run()
    assert runner.origin_run_id == first.run_id
    assert not second.successful and second.tasks_cloned == 1 + 5


def test_resume_from_an_unknown_step_is_refused(tmp_path):
    ds = str(tmp_path / "ds")
    first = run("failing_flow.py", ds)
    loaded = load_flow(os.path.join(FLOWS, "failing_flow.py"))
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False,
                      resume=ResumeRequest(origin_run_id=first.run_id, step="nope"))
    with pytest.raises(Exception, match="Cannot resume from step 'nope'"):
        RunLoop(loaded, None, opts).run()


def task_at(store, run_id, step, *indices, iteration=0):
    """The record of the task of `step` at these split indices (task ids are run-wide)."""
    for rec, _ in store.step_records(run_id, step).values():
        if tuple(f[1] for f in rec.foreach_stack) == indices and rec.iteration == iteration:
            return rec
    raise AssertionError(f"no task of {step} at {indices} iteration {iteration}")


def test_retry_then_success_records_both_attempts(tmp_path):
    ds = str(tmp_path / "ds")
    s = run("batching_flow.py", ds, {"width": 20, "flaky_at": 7})
    assert s.successful, s.failures
    store = FlowDataStore.from_url(ds, "BatchingFlow")
    seven = task_at(store, s.run_id, "work", 7).task_id
    assert store.read_task(s.run_id, "work", seven, attempt=0).status == "failed"
    assert store.read_task(s.run_id, "work", seven).attempt == 1


def test_a_deleted_inherited_artifact_is_still_passed_on_as_in_metaflow(tmp_path):
    flow = tmp_path / "delete_flow.py"
    flow.write_text(
        "from rayflow import FlowSpec, step\n\n"
        "class DeleteFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.a, self.b = 1, 2\n"
        "        self.next(self.middle)\n\n"
        "    @step\n"
        "    def middle(self):\n"
        "        del self.a\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        self.seen = sorted(n for n, _ in self)\n")
    ds = str(tmp_path / "ds")
    s = run(str(flow), ds)
    assert s.successful, s.failures
    # Metaflow 2.19 persists what the parent passed down whatever the step deleted, and
    # `name` is the flow's name, an artifact of every task as in Metaflow.
    assert Run(s.pathspec, datastore=ds)["end"].task.data.seen == ["a", "b", "name"]


def test_a_run_record_that_cannot_be_finished_is_the_runs_error(tmp_path, monkeypatch):
    from rayflow.exceptions import DataStoreError

    ds = str(tmp_path / "ds")
    writes = []
    original = FlowDataStore.write_run

    def failing_second_write(self, rec):
        writes.append(rec.status)
        if len(writes) > 1:
            raise OSError(28, "No space left on device")
        return original(self, rec)

    monkeypatch.setattr(FlowDataStore, "write_run", failing_second_write)
    with pytest.raises(DataStoreError, match="could not be written"):
        run("failing_flow.py", ds, {"fail": False})
    assert writes == ["running", "success"]


def test_the_executor_can_be_handed_in(tmp_path):
    loaded = load_flow(os.path.join(EXAMPLES, "hello.py"))
    executor = InlineExecutor()
    opts = RunOptions(datastore_url=str(tmp_path / "ds"), executor="inline", progress=False)
    s = RunLoop(loaded, resolve_parameters(loaded.cls, {}), opts, executor=executor).run()
    assert s.successful and executor.in_flight == 0


def test_run_id_file_is_written_at_the_start(tmp_path):
    target = tmp_path / "run-id"
    s = run("failing_flow.py", str(tmp_path / "ds"), run_id_file=str(target))
    assert target.read_text() == s.run_id


def test_every_task_sees_inherited_values_as_their_parent_left_them(tmp_path):
    ds = str(tmp_path / "ds")
    s = run("isolation_flow.py", ds, {"width": 300})
    assert s.successful, s.failures[0].error.describe() if s.failures else ""
    assert Run(s.pathspec, datastore=ds)["join"].task.data.checked == 300
    store = FlowDataStore.from_url(ds, "IsolationFlow")
    batches = [store.bundles.read(s.run_id, "work", n)
               for n in store.bundles.names(s.run_id, "work")]
    assert max(len(b) for b in batches) > 10, "the splits did not run in batches"


def test_switch_and_recursion_inside_a_foreach(tmp_path):
    ds = str(tmp_path / "ds")
    s = run("switch_flow.py", ds, {"mode": "right"})
    assert s.successful, s.failures[0].error.describe() if s.failures else ""
    run_ = Run(s.pathspec, datastore=ds)
    assert run_["end"].task.data.side == "right"
    assert "left" not in [step.id for step in run_]
    ids = run_["join"].task.data.ids
    assert [len(i) for i in ids] == [2, 4, 1]
    loop = run_["loop"]
    flat = [t for split in ids for t in split]
    assert sorted(t.id for t in loop) == sorted(flat) and len(set(flat)) == 7  # all distinct
    store = FlowDataStore.from_url(ds, "SwitchFlow")
    third = task_at(store, s.run_id, "loop", 1, iteration=2).task_id
    second = task_at(store, s.run_id, "loop", 1, iteration=1).task_id
    fourth = task_at(store, s.run_id, "loop", 1, iteration=3).task_id
    assert ids[1] == [task_at(store, s.run_id, "loop", 1, iteration=k).task_id
                      for k in range(4)]
    assert list(loop[third].parent_task_pathspecs) == [f"{s.pathspec}/loop/{second}"]
    assert [t.pathspec for t in loop[third].child_tasks] == [f"{s.pathspec}/loop/{fourth}"]
    right = run_["right"].task.id
    assert next(run_["route"].task.child_tasks).pathspec == f"{s.pathspec}/right/{right}"


def test_resume_reruns_a_recursive_step_from_the_iteration_that_failed(tmp_path):
    ds = str(tmp_path / "ds")
    (tmp_path / "fail-3").touch()
    first = run("switch_flow.py", ds, {"marker_dir": str(tmp_path)})
    store = FlowDataStore.from_url(ds, "SwitchFlow")
    failed = first.failures[0].task_id
    assert not first.successful
    assert task_at(store, first.run_id, "loop", 1, iteration=2).task_id == failed
    (tmp_path / "fail-3").unlink()
    loaded = load_flow(os.path.join(FLOWS, "switch_flow.py"))
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False,
                      resume=ResumeRequest(origin_run_id=first.run_id))
    second = RunLoop(loaded, None, opts).run()
    assert second.successful, second.failures
    for index, iteration in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0)):
        rec = task_at(store, second.run_id, "loop", index, iteration=iteration)
        origin = task_at(store, first.run_id, "loop", index, iteration=iteration)
        assert rec.origin_pathspec == origin.pathspec
    for iteration in (2, 3):
        assert task_at(store, second.run_id, "loop", 1,
                       iteration=iteration).origin_pathspec is None
    assert Run(second.pathspec, datastore=ds)["join"].task.data.counts == [2, 4, 1]


CURRENT_FLOW = '''
import pickle
from rayflow import FlowSpec, current, step


class CurrentFlow(FlowSpec):
    @step
    def start(self):
        self.tags_seen = current.tags
        self.tags_seen.add("changed-here-only")
        self.ns = current.namespace
        self.task_obj = current.task
        self.run_obj = current.run
        self.next(self.end)

    @step
    def end(self):
        self.tags_seen.update(current.tags)
        self.same = pickle.loads(pickle.dumps(current.task)).pathspec == current.pathspec
'''


def test_current_tags_task_and_run_as_in_metaflow(tmp_path):
    path = tmp_path / "current_flow.py"
    path.write_text(CURRENT_FLOW)
    s = run(str(path), str(tmp_path / "ds"), tags=["t1"])
    assert s.successful, s.failures
    from rayflow import Run

    run_ = Run(s.pathspec, datastore=str(tmp_path / "ds"))
    end = run_["end"].task.data
    assert end.tags_seen == {"t1", "changed-here-only"} and end.same
    start = run_["start"].task.data
    assert start.ns == f"user:{run_.user}"
    assert start.task_obj.pathspec == f"{s.pathspec}/start/0"
    assert start.run_obj.pathspec == s.pathspec and start.run_obj["end"].task.successful


def test_a_join_sees_what_each_input_saw_through_a_deep_foreach_body(tmp_path):
    """The join's inputs wait as columns (runtime/joins.py): what each split set in the steps
    between the split and the join, what it changed and what it deleted, all come back per
    input, and the join's record names every parent."""
    ds = str(tmp_path / "ds")
    s = run("deep_join_flow.py", ds, {"n": 7})
    assert s.successful, s.failures
    run_ = Run(s.pathspec, datastore=ds)
    data = run_["join"].task.data
    assert data.xs == [10 * i + 1 for i in range(7)]
    assert data.ys == [2 * (10 * i + 1) for i in range(7)]
    assert data.tags == [f"a{i}" for i in range(7)]
    assert data.shared_seen == {"from start"}
    assert data.doomed_seen == [True] * 7  # `del` of an inherited artifact: still passed on
    parents = list(run_["join"].task.parent_task_pathspecs)
    assert [p.split("/")[2] for p in parents] == ["c"] * 7
    ys = [run_["c"][p.split("/")[3]].data.y for p in parents]
    assert ys == data.ys  # in split order
