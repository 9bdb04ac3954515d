"""Pure parts of the runtime, one at a time: batch sizing, the retry queue, the cloner, artifact
capture, task errors and the scope of a task. No Ray."""

from __future__ import annotations

import os
import types

import pytest

from rayflow.datastore import FlowDataStore, TaskRecord
from rayflow.exceptions import DataStoreError, DataStoreUnreachable, InvalidNextError
from rayflow.flowstate import FlowState
from rayflow.runtime.artifacts import ArtifactLoc, Scope
from rayflow.runtime.batching import MAX_BATCH, TARGET_BATCH_SECONDS, BatchSizer, chunking
from rayflow.runtime.errors import ErrorKind, TaskError
from rayflow.runtime.resume import Cloner
from rayflow.runtime.run_loop import RetryQueue
from rayflow.runtime.scheduler import ParentLink, ReadyTask, TaskKey
from rayflow.runtime.spec import TaskOutcome, TaskSpec
from rayflow.runtime.worker_task import CapturedTask, _capture_artifacts


def outcomes(n: int, seconds_each: float) -> list[TaskOutcome]:
    return [TaskOutcome("s", str(i), 0, True, started_at=i * seconds_each,
                        finished_at=(i + 1) * seconds_each) for i in range(n)]


# ------------------------------------------------------------------------------ batch sizing
def test_first_tasks_go_one_at_a_time_until_measured():
    sizer = BatchSizer(parallelism=4)
    assert sizer.size("s", remaining=10_000) == 1
    sizer.record("s", outcomes(3, 0.001))
    assert sizer.size("s", remaining=10_000) == 1  # 3 measured < 4 workers
    sizer.record("s", outcomes(1, 0.001))
    assert sizer.size("s", remaining=10_000) == int(TARGET_BATCH_SECONDS / 0.001)


def test_batch_size_is_capped_by_a_fair_share_and_the_maximum():
    sizer = BatchSizer(parallelism=2)
    sizer.record("s", outcomes(10, 1e-7))
    assert sizer.size("s", remaining=100) == 25           # ceil(100 / (2 * 2))
    assert sizer.size("s", remaining=10**9) == MAX_BATCH
    assert sizer.size("s", remaining=1) == 1


def test_slow_tasks_and_forced_single_tasks_stay_alone():
    sizer = BatchSizer(parallelism=1)
    sizer.record("s", outcomes(2, 5.0))
    assert sizer.size("s", remaining=1000) == 1
    sizer.record("t", outcomes(5, 1e-6))
    assert sizer.size("t", remaining=1000, one_at_a_time=True) == 1
    assert sizer.size("other", remaining=1000) == 1  # steps are measured separately


@pytest.mark.parametrize("n, expected", [(1, (1, 1)), (4096, (1, 4096)), (4097, (2, 2049)),
                                         (100_000, (25, 4000))])
def test_chunking_keeps_the_number_of_chunks_bounded(n, expected):
    chunk, count = chunking(n)
    assert (chunk, count) == expected
    assert chunk * count >= n > chunk * (count - 1)


# ------------------------------------------------------------------------------- retry queue
def task(step="s", index=0) -> ReadyTask:
    return ReadyTask(step, (("p", index, 10),), [])


def test_retry_queue_releases_in_due_order_and_only_when_due():
    q = RetryQueue()
    a, b, c = task(index=1), task(index=2), task(index=3)
    q.push(20.0, a, 1)
    q.push(10.0, b, 2)
    q.push(10.0, c, 1)
    assert q.pop_due(5.0) == [] and len(q) == 3
    assert q.pop_due(10.0) == [(b, 2), (c, 1)]  # same due time: the order they failed in
    assert len(q) == 1 and bool(q)
    assert q.pop_due(100.0) == [(a, 1)] and not q


# ------------------------------------------------------------------------------------ cloner
@pytest.fixture
def store(tmp_path):
    return FlowDataStore.from_url(str(tmp_path / "ds"), "F")


class _Graph:
    name = "F"
    steps = ["start", "work", "end"]
    _out = {"start": ["work"], "work": ["end"], "end": []}

    def __contains__(self, step):
        return step in self._out

    def __getitem__(self, step):
        return types.SimpleNamespace(out_funcs=self._out[step])


def _record(step, task_id, status="success", **kw) -> TaskRecord:
    return TaskRecord(flow="F", run_id="1", step=step, task_id=task_id, status=status,
                      transition={"steps": ["work"], "foreach": None}, **kw)


def test_cloner_reuses_done_tasks_whose_parents_were_reused(store):
    infos = store.save_artifacts({"x": 41})
    store.write_tasks([_record("start", "0", artifacts=infos)])
    # The origin's splits 0 and 1 were tasks 1 and 2; the resumed run numbers them anew, and
    # the cloner matches them by their split index, not their id.
    store.write_tasks([_record("work", "1", foreach_stack=[("start", 0, 2)]),
                       _record("work", "2", status="failed", foreach_stack=[("start", 1, 2)])])
    cloner = Cloner(store, "1", _Graph())
    cloner.begin("2")
    start = ReadyTask("start", (), [], task_id="0")
    clone = cloner.try_clone(start)
    assert clone is not None and clone.next_steps == ("work",)
    assert clone.own["x"].sha == infos["x"].sha and clone.own["x"].ref is None
    link = ParentLink(TaskKey("start", "0"), None)
    ok = ReadyTask("work", (("start", 0, 2),), [link], task_id="7")
    failed = ReadyTask("work", (("start", 1, 2),), [link], task_id="8")
    assert cloner.try_clone(ok) is not None
    assert cloner.try_clone(failed) is None          # it failed in the origin: run again
    orphan = ReadyTask("end", (), [ParentLink(TaskKey("work", "8"), None)], task_id="9")
    assert cloner.try_clone(orphan) is None          # its parent was not cloned
    cloner.flush()
    assert cloner.count == 2
    assert store.read_task("2", "start", "0").origin_pathspec == "F/1/start/0"
    assert store.read_task("2", "work", "7").parents == ["F/2/start/0"]
    assert store.read_task("2", "work", "7").origin_pathspec == "F/1/work/1"
    assert store.read_task("2", "work", "8") is None


def test_cloner_reruns_the_step_asked_for_and_all_after_it(store):
    store.write_tasks([_record("start", "0"), _record("work", "0")])
    cloner = Cloner(store, "1", _Graph(), rerun_step="work")
    cloner.begin("2")
    assert cloner.rerun == {"work", "end"}
    assert cloner.try_clone(ReadyTask("start", (), [])) is not None
    link = ParentLink(TaskKey("start", "0"), None)
    assert cloner.try_clone(ReadyTask("work", (("start", 0, 1),), [link])) is None


# ---------------------------------------------------------------------------- task errors
@pytest.mark.parametrize("exc, kind, retryable", [
    (ValueError("boom"), ErrorKind.USER, True),
    (InvalidNextError("bad next"), ErrorKind.USER, False),
    (DataStoreUnreachable("gone"), ErrorKind.DATASTORE, True),
    (DataStoreError("corrupt"), ErrorKind.DATASTORE, False),
])
def test_task_error_kinds(exc, kind, retryable):
    err = TaskError.from_exception(exc, "tb")
    assert (err.kind, err.retryable) == (kind, retryable)
    assert err.type == f"{type(exc).__module__}.{type(exc).__qualname__}"
    assert err.to_json() == {"type": err.type, "message": str(exc), "traceback": "tb",
                             "kind": kind.value}


def test_scheduling_and_system_errors():
    from rayflow.exceptions import SchedulingError

    err = TaskError.from_exception(SchedulingError("no node"))
    assert err.kind is ErrorKind.SCHEDULING and not err.retryable
    crash = TaskError.system(OSError("worker died"))
    assert crash.kind is ErrorKind.SYSTEM and crash.retryable
    assert crash.describe() == "builtins.OSError: worker died"


# ----------------------------------------------------------------------------------- scope
def loc(name, sha="0" * 32) -> ArtifactLoc:
    return ArtifactLoc(name, sha, "pickle", "builtins.int", 1)


def test_scope_layers_own_artifacts_and_deletions_over_the_parent():
    root = Scope({"a": loc("a"), "b": loc("b")})
    child = Scope({"c": loc("c")}, root, removed=("a",))
    grandchild = Scope({"a": loc("a", "1" * 32)}, child)
    assert sorted(child.flatten()) == ["b", "c"]
    assert child.get("a") is None and child.get("b") is root.own["b"]
    assert grandchild.get("a").sha == "1" * 32
    assert sorted(grandchild.flatten()) == ["a", "b", "c"]


# -------------------------------------------------------------------------- artifact capture
class _Flow:
    pass


def _captured(store, view: dict, loaded: dict, assigned: dict) -> CapturedTask:
    flow = _Flow()
    state = FlowState(step="s", params={}, view=view, loader=lambda loc: None)
    state.attach(flow)
    for name, (value, where) in loaded.items():
        flow.__dict__[name] = value
        state.loaded[name] = (where, id(value))
    flow.__dict__.update(assigned)
    cap = CapturedTask(TaskOutcome("s", "0", 0, True))
    _capture_artifacts(flow, cap, TaskSpec("s", "0", 0, ()), store.artifacts)
    return cap


def test_capture_keeps_unchanged_inherited_artifacts_by_reference(store):
    kept_list = [1, 2, 3]
    infos = store.save_artifacts({"same": "text", "lst": kept_list, "big": "z" * 1000})
    view = {n: ArtifactLoc.from_info(n, i) for n, i in infos.items()}
    cap = _captured(store, view, loaded={"same": ("text", view["same"]),
                                         "lst": (kept_list, view["lst"])},
                    assigned={"new": {"k": 1}, "__private": object()})
    assert set(cap.outcome.new) == {"new"}           # lst loaded, unchanged: same hash
    assert cap.record_artifacts["big"] is view["big"]  # never loaded: by reference
    assert set(cap.record_artifacts) == {"same", "lst", "big", "new"}
    assert cap.inputs_read == {"same": infos["same"].sha, "lst": infos["lst"].sha}
    assert cap.values == {"new": {"k": 1}}


def test_capture_keeps_single_underscore_artifacts_as_metaflow_does(store):
    """`self._x` is an artifact in Metaflow (only dunders and its runtime's own names are
    not): a user step decorator's post_step may leave state for later steps that way."""
    cap = _captured(store, {}, loaded={}, assigned={"_seen": True, "__dunder": 1})
    assert set(cap.outcome.new) == {"_seen"}
    assert "_rf" not in cap.record_artifacts


def test_capture_keeps_private_names_and_skips_functions_as_metaflow_does(store):
    def helper():
        return 1

    cap = _captured(store, {}, {}, {"_private": 1, "_Flow__mangled": 2, "__dunder": 3,
                                    "func": helper, "lam": lambda: 1,
                                    "meth": store.artifacts.encode, "builtin": len,
                                    "klass": _Flow})
    # Metaflow 2.19 saves "_x" names, skips only "__" names, functions and bound methods.
    assert set(cap.outcome.new) == {"_private", "_Flow__mangled", "builtin", "klass"}


def test_capture_sees_an_in_place_change_of_an_inherited_value(store):
    data = [1, 2, 3]
    infos = store.save_artifacts({"lst": data})
    view = {"lst": ArtifactLoc.from_info("lst", infos["lst"])}
    data.append(4)
    cap = _captured(store, view, loaded={"lst": (data, view["lst"])}, assigned={})
    assert set(cap.outcome.new) == {"lst"}
    assert cap.outcome.new["lst"].sha != infos["lst"].sha


def test_capture_inlines_small_values_and_blobs_big_ones(store):
    cap = _captured(store, {}, {}, {"small": 7, "big": os.urandom(4096)})
    by_name = {e.name: e for e in cap.encoded}
    assert by_name["small"].data is None and by_name["small"].info.inline
    assert by_name["big"].data is not None and by_name["big"].info.inline is None
    store.artifacts.save(cap.encoded)
    assert store.load_artifact(by_name["big"].info) == cap.values["big"]


def test_a_warm_ray_is_handed_only_the_variables_its_workers_lack():
    from rayflow.runtime.warm import WarmRay, driver_env_for_workers, env_digest

    keeper = {"PATH": "/bin", "HOME": "/root", "SECRET": "s3cr3t"}
    warm = WarmRay(1, "127.0.0.1:1", 0.0, 60.0, env=env_digest(keeper))
    assert "s3cr3t" not in str(warm.env)
    assert warm.env_changes({"PATH": "/bin", "HOME": "/root"}) == {}
    assert warm.env_changes({"PATH": "/usr/bin", "NEW": "1", "HOME": "/root"}) == \
        {"PATH": "/usr/bin", "NEW": "1"}
    # A keeper that did not say what its workers have: everything is handed on.
    assert WarmRay(1, "a", 0.0, 60.0).env_changes({"PATH": "/bin"}) == {"PATH": "/bin"}
    assert not any(k.startswith("RAY_") or k == "PWD" for k in driver_env_for_workers())


# ------------------------------------------------------------------ @resources on one machine
def test_resources_are_cut_to_the_machine_only_where_they_exceed_it():
    from rayflow.runtime.cluster import clamp_to_machine, describe_clamp

    machine = {"CPU": 2.0, "memory": 4 * 2**30, "node:1.2.3.4": 1.0}
    asked = {"num_cpus": 4.0, "num_gpus": 1.0, "memory": 8 * 2**30, "resources": {"x": 1.0}}
    fitted, cut = clamp_to_machine(asked, machine)
    assert fitted == {"num_cpus": 2.0, "memory": 4 * 2**30, "resources": {"x": 1.0}}
    assert cut == {"num_cpus": (4.0, 2.0), "num_gpus": (1.0, 0), "memory": (8 * 2**30, 4 * 2**30)}
    line = describe_clamp("train", cut)
    assert line.startswith("Step 'train' asks for cpu=4, gpu=1, memory=8192 MB")
    assert "runs with cpu=2, no GPU, memory=4096 MB" in line
    small = {"num_cpus": 1.0, "memory": 2**30}
    assert clamp_to_machine(small, machine) == (small, {})
