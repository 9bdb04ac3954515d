"""Tests for rayflow.client: Metaflow's client API over real datastore records.

Runs are built by writing records with the real FlowDataStore into a temporary local folder, the
way the runtime would, so the client is tested against the datastore contract and not a fake.
No Ray, no S3.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest

import rayflow.client.datastores as client_datastores
import rayflow.client.namespaces as client_namespaces
from rayflow.client import (
    DataArtifact,
    Flow,
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    Run,
    Step,
    Task,
    default_namespace,
    get_metadata,
    get_namespace,
    get_username,
    metadata,
    namespace,
)
from rayflow.datastore import FlowDataStore, RunRecord, TaskRecord

FLOW = "ForeachFlow"
ITEMS = ["a", "b", "c"]
# Deliberately ids whose text order (10, 11, 9) differs from their numeric order (9, 10, 11).
WORK_IDS = ["9", "10", "11"]
T0 = 1_700_000_000.0


# -- building runs the way the runtime writes them -----------------------------------------------
def write_task(store: FlowDataStore, run_id: str, step: str, task_id: str, *,
               artifacts: dict, parents: list[str], started: float, user: str = "alice",
               foreach_stack: list | None = None, status: str = "success",
               exception: dict | None = None, attempt: int = 0,
               foreach_num_splits: int | None = None, next_steps: list[str] | None = None,
               foreach_var: str | None = None) -> TaskRecord:
    record = TaskRecord(
        flow=FLOW, run_id=run_id, step=step, task_id=task_id, attempt=attempt, status=status,
        artifacts=store.save_artifacts(artifacts),
        foreach_stack=foreach_stack or [], foreach_num_splits=foreach_num_splits,
        transition={"steps": next_steps or [], "foreach": foreach_var},
        parents=parents, inputs={}, code_hash="c0de", params={"alpha": 7}, user=user,
        node="node-1", started_at=started, finished_at=started + 0.5, exception=exception,
        origin_pathspec=None,
    )
    store.write_task(record)
    return record


def write_run(store: FlowDataStore, run_id: str, *, user: str = "alice", t0: float = T0,
              end_ok: bool = True, tags: list[str] | None = None) -> None:
    """start -> foreach of 3 over `work` -> join -> end, as the runtime would record it."""
    store.write_run(RunRecord(
        flow=FLOW, run_id=run_id, user=user, params={"alpha": 7}, tags=tags or ["baseline"],
        sys_tags=[f"user:{user}", "runtime:test"], code_hash="c0de",
        status="success" if end_ok else "failed", started_at=t0, finished_at=t0 + 10,
        flow_file="flow.py", origin_run_id=None, datastore=store.url, ray_address=None,
    ))
    start = f"{FLOW}/{run_id}/start/1"
    write_task(store, run_id, "start", "1", artifacts={"alpha": 7, "items": ITEMS},
               parents=[], started=t0 + 1, user=user, foreach_num_splits=3,
               next_steps=["work"], foreach_var="items")
    for index, (task_id, item) in enumerate(zip(WORK_IDS, ITEMS)):
        write_task(store, run_id, "work", task_id,
                   artifacts={"alpha": 7, "items": ITEMS, "item": item, "squared": index ** 2},
                   parents=[start], started=t0 + 2 + index, user=user,
                   foreach_stack=[("start", index, 3)], next_steps=["join"])
        store.save_log(run_id, "work", task_id, 0, "stdout", f"processing {item}\n")
        store.save_log(run_id, "work", task_id, 0, "stderr", f"warning {index}\n")
    work = [f"{FLOW}/{run_id}/work/{task_id}" for task_id in WORK_IDS]
    write_task(store, run_id, "join", "12", artifacts={"alpha": 7, "total": 5}, parents=work,
               started=t0 + 6, user=user, next_steps=["end"])
    end_exception = None if end_ok else {
        "type": "ValueError", "message": "end blew up",
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: end blew up"}
    write_task(store, run_id, "end", "13", artifacts={"alpha": 7, "total": 5},
               parents=[f"{FLOW}/{run_id}/join/12"], started=t0 + 7, user=user,
               status="success" if end_ok else "failed", exception=end_exception)


@pytest.fixture(autouse=True)
def client_state(monkeypatch):
    """Every test starts as user alice in the default namespace and datastore, and leaks none."""
    for var in ("RAYFLOW_USER", "METAFLOW_USER", "USER", "USERNAME", "RAYFLOW_DATASTORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAYFLOW_USER", "alice")
    monkeypatch.setattr(client_namespaces, "_current_namespace", client_namespaces._UNSET)
    monkeypatch.setattr(client_datastores, "_selected_url", None)


@pytest.fixture
def root(tmp_path):
    """A datastore with alice's run that stopped before `end` (r0), her good run (r1), her newer
    failed run (r2) and bob's run (r3), written oldest first; the client points at it."""
    root = str(tmp_path / ".rayflow")
    store = FlowDataStore.from_url(root, FLOW)
    store.write_run(RunRecord(
        flow=FLOW, run_id="r0", user="alice", params={}, tags=[], sys_tags=["user:alice"],
        code_hash="c0de", status="failed", started_at=T0 - 100, finished_at=None,
        flow_file="flow.py", origin_run_id=None, datastore=root, ray_address=None))
    write_task(store, "r0", "start", "1", artifacts={"alpha": 1}, parents=[], started=T0 - 99)
    write_run(store, "r1", t0=T0)
    write_run(store, "r2", t0=T0 + 100, end_ok=False, tags=["candidate"])
    write_run(store, "r3", t0=T0 + 200, user="bob")
    metadata(root)
    return root


def run_ids(runs) -> list[str]:
    return [run.id for run in runs]


# -- navigation ----------------------------------------------------------------------------------
def test_navigation_from_flow_to_artifact(root):
    run = Flow(FLOW)["r1"]
    assert [step.id for step in run] == ["end", "join", "work", "start"]  # newest first
    assert "work" in run and "nostep" not in run
    work = run["work"]
    assert [task.id for task in work] == WORK_IDS[::-1]  # newest first, numeric-aware
    task = work["10"]
    assert task.data.item == "b" and task.data.squared == 1
    assert "item" in task and "item" in task.data and "nope" not in task
    assert [artifact.id for artifact in task] == ["alpha", "item", "items", "squared"]
    assert task["item"].data == "b"
    assert task.artifacts.squared.data == 1
    assert run["start"].task.data.items == ITEMS
    assert run.data.total == 5 and run.end_task == Task(f"{FLOW}/r1/end/13")


def test_pathspec_lookups_and_parents(root):
    artifact = DataArtifact(f"{FLOW}/r1/work/9/item")
    assert artifact.data == "a"
    assert artifact.pathspec == f"{FLOW}/r1/work/9/item" and artifact.id == "item"
    assert artifact.parent == Task(f"{FLOW}/r1/work/9")
    assert artifact.parent.parent == Step(f"{FLOW}/r1/work")
    assert artifact.parent.parent.parent == Run(f"{FLOW}/r1")
    assert artifact.parent.parent.parent.parent == Flow(FLOW)
    assert Flow(FLOW).parent is None
    assert Run(f"{FLOW}/r1").path_components == [FLOW, "r1"]


def test_repr_and_equality(root):
    assert repr(Run(f"{FLOW}/r1")) == f"Run('{FLOW}/r1')"
    assert str(Flow(FLOW)) == f"Flow('{FLOW}')"
    assert repr(Task(f"{FLOW}/r1/work/9", attempt=0)) == f"Task('{FLOW}/r1/work/9', attempt=0)"
    assert Run(f"{FLOW}/r1") == Flow(FLOW)["r1"]
    assert Run(f"{FLOW}/r1") != Run(f"{FLOW}/r2")
    assert Step(f"{FLOW}/r1/work") != Run(f"{FLOW}/r1")
    assert len({Run(f"{FLOW}/r1"), Flow(FLOW)["r1"]}) == 1


@pytest.mark.parametrize("cls, pathspec", [
    (Run, FLOW), (Run, f"{FLOW}/r1/start"), (Step, f"{FLOW}/r1"), (Task, f"{FLOW}//start/1"),
    (DataArtifact, f"{FLOW}/r1/start/1"), (Flow, f"{FLOW}/r1"), (Run, 42),
])
def test_malformed_pathspecs_say_the_expected_form(root, cls, pathspec):
    with pytest.raises(MetaflowInvalidPathspec) as err:
        cls(pathspec)
    assert cls.__name__ in str(err.value) and "e.g." in str(err.value)


# -- runs: latest, success, failure --------------------------------------------------------------
def test_runs_newest_first_and_latest(root):
    flow = Flow(FLOW)
    assert run_ids(flow) == ["r2", "r1", "r0"]  # bob's r3 is not in alice's namespace
    assert flow.latest_run.id == "r2"
    assert flow.latest_successful_run.id == "r1"
    assert flow.id == FLOW and flow.pathspec == FLOW


def test_failed_run_is_not_successful(root):
    run = Run(f"{FLOW}/r2")
    assert not run.successful and not run.finished and run.finished_at is None
    assert run.status == "failed"
    end = run.end_task
    assert end is not None and not end.successful and not end.finished  # as in Metaflow
    assert list(run["end"]) == [end]  # a failed task still shows, as in Metaflow
    assert end.exception.type == "ValueError"
    assert "end blew up" in str(end.exception)
    assert str(end.exception).count("ValueError: end blew up") == 1
    assert Run(f"{FLOW}/r1").end_task.exception is None


def test_run_that_never_reached_end(root):
    run = Run(f"{FLOW}/r0")
    assert run.data is None and run.end_task is None
    assert not run.successful and not run.finished and run.status == "failed"
    assert [step.id for step in run] == ["start"]


def test_successful_run_fields(root):
    run = Run(f"{FLOW}/r1")
    assert run.successful and run.finished and run.status == "success"
    assert run.created_at == datetime.fromtimestamp(T0)
    assert run.finished_at == datetime.fromtimestamp(T0 + 7.5)
    assert run.parameters == {"alpha": 7} and run.user == "alice"
    assert run.origin_pathspec is None
    assert run["work"].finished_at == datetime.fromtimestamp(T0 + 4.5)
    assert run["work"].created_at == datetime.fromtimestamp(T0 + 2)


# -- namespaces ----------------------------------------------------------------------------------
def test_default_namespace_is_the_user(root):
    assert get_namespace() == "user:alice"
    assert namespace(None) is None and get_namespace() is None
    assert default_namespace() == "user:alice" and get_namespace() == "user:alice"


def test_other_users_run_is_hidden_until_global_namespace(root):
    assert "r3" not in run_ids(Flow(FLOW))
    with pytest.raises(MetaflowNamespaceMismatch) as err:
        Run(f"{FLOW}/r3")
    message = str(err.value)
    assert f"{FLOW}/r3" in message and "user:alice" in message and "namespace(None)" in message
    with pytest.raises(MetaflowNamespaceMismatch):
        Flow(FLOW)["r3"]
    with pytest.raises(MetaflowNamespaceMismatch):
        Task(f"{FLOW}/r3/work/9")
    assert "r3" in Flow(FLOW)  # existence is no secret; reading it is namespaced

    namespace(None)
    assert run_ids(Flow(FLOW)) == ["r3", "r2", "r1", "r0"]
    assert Run(f"{FLOW}/r3").data.total == 5
    namespace("user:bob")
    assert run_ids(Flow(FLOW)) == ["r3"] and Flow(FLOW).latest_run.id == "r3"


def test_namespace_can_be_a_user_tag(root):
    namespace("candidate")
    assert run_ids(Flow(FLOW)) == ["r2"]
    assert Run(f"{FLOW}/r2").is_in_namespace()


def test_namespace_rejects_non_tags():
    with pytest.raises(ValueError, match="namespace"):
        namespace("")


# -- tags ----------------------------------------------------------------------------------------
def test_tags_are_user_plus_system(root):
    run = Run(f"{FLOW}/r1")
    assert run.user_tags == {"baseline"}
    assert run.system_tags == {"user:alice", "runtime:test"}
    assert run.tags == {"baseline", "user:alice", "runtime:test"}
    assert run["work"].task.tags == run.tags


def test_tag_changes_are_persisted(root):
    run = Run(f"{FLOW}/r1")
    run.add_tag("golden")
    run.add_tags(["x", "y", "x"])
    run.remove_tag("baseline")
    run.replace_tag("x", "z")
    run.remove_tags(["y"])
    expected = {"golden", "z"}
    assert run.user_tags == expected
    assert Run(f"{FLOW}/r1").user_tags == expected  # re-read from the datastore
    assert run_ids(Flow(FLOW).runs("golden")) == ["r1"]
    assert run_ids(Flow(FLOW).runs("golden", "baseline")) == []
    assert run_ids(Flow(FLOW).runs()) == ["r2", "r1", "r0"]


def test_system_tags_cannot_be_removed_and_strings_are_not_tag_lists(root):
    run = Run(f"{FLOW}/r1")
    with pytest.raises(ValueError, match="system tag"):
        run.remove_tag("user:alice")
    with pytest.raises(TypeError, match="add_tag"):
        run.add_tags("golden")
    with pytest.raises(ValueError):
        run.add_tag("")
    assert Run(f"{FLOW}/r1").user_tags == {"baseline"}


# -- tasks ---------------------------------------------------------------------------------------
def test_task_index_and_parents(root):
    run = Run(f"{FLOW}/r1")
    assert [task.index for task in run["work"]] == [2, 1, 0]
    assert run["work"]["11"].foreach_stack == [("start", 2, 3)]
    assert run["start"].task.index is None and run["join"].task.index is None
    join = run["join"].task
    assert list(join.parent_task_pathspecs) == [f"{FLOW}/r1/work/{i}" for i in WORK_IDS]
    assert [task.data.item for task in join.parent_tasks] == ITEMS
    assert list(run["work"]["9"].parent_tasks) == [run["start"].task]
    assert list(run["start"].task.parent_tasks) == []


def test_task_without_a_record_yet_is_skipped(root):
    store = FlowDataStore.from_url(root, FLOW)
    store.save_log("r1", "work", "12", 0, "stdout", "still running\n")  # folder, no record
    assert [task.id for task in Step(f"{FLOW}/r1/work")] == WORK_IDS[::-1]
    assert "12" not in Step(f"{FLOW}/r1/work")


def test_task_logs(root):
    task = Task(f"{FLOW}/r1/work/10")
    assert task.stdout == "processing b\n"
    assert task.stderr == "warning 1\n"
    assert Task(f"{FLOW}/r1/start/1").stdout == ""


def test_task_record_views(root):
    task = Task(f"{FLOW}/r1/work/9")
    assert task.successful and task.finished and task.current_attempt == 0
    assert task.created_at == datetime.fromtimestamp(T0 + 2)
    assert task.finished_at == datetime.fromtimestamp(T0 + 2.5)
    assert task.metadata_dict["node"] == "node-1" and task.metadata_dict["user"] == "alice"
    assert task.metadata_dict["code_hash"] == "c0de"
    assert task.lineage["parents"] == [f"{FLOW}/r1/start/1"]
    assert task.lineage["params"] == {"alpha": 7}
    assert task.origin_pathspec is None
    assert task.id == "9" and task.pathspec == f"{FLOW}/r1/work/9"


def test_task_attempts(root):
    store = FlowDataStore.from_url(root, FLOW)
    kwargs = {"parents": [], "started": T0 + 50, "next_steps": ["end"]}
    write_task(store, "r1", "retry", "20", artifacts={"v": "first"}, status="failed",
               exception={"type": "OSError", "message": "flaky", "traceback": ""}, **kwargs)
    write_task(store, "r1", "retry", "20", artifacts={"v": "second"}, attempt=1, **kwargs)
    latest = Task(f"{FLOW}/r1/retry/20")
    assert latest.current_attempt == 1 and latest.data.v == "second" and latest.successful
    first = Task(f"{FLOW}/r1/retry/20", attempt=0)
    assert first.data.v == "first" and not first.successful
    assert str(first.exception) == "OSError: flaky"
    with pytest.raises(MetaflowNotFound, match="attempt 5"):
        Task(f"{FLOW}/r1/retry/20", attempt=5)


def test_data_artifact_fields(root):
    store = FlowDataStore.from_url(root, FLOW)
    expected = store.save_artifacts({"item": "a"})["item"]
    artifact = Task(f"{FLOW}/r1/work/9")["item"]
    assert artifact.sha == expected.sha and artifact.size == expected.size > 0
    assert artifact.type == expected.type and "str" in artifact.type
    assert artifact.encoding == expected.encoding
    assert artifact.data == "a"
    # Content addressing: the same value in another task is the same blob.
    assert Task(f"{FLOW}/r2/work/9")["item"].sha == artifact.sha


def test_data_is_lazy_and_missing_attributes_explain(root):
    data = Task(f"{FLOW}/r1/work/9").data
    assert "item" in repr(data) and "squared" in dir(data)
    with pytest.raises(AttributeError, match="no artifact 'nope'"):
        _ = data.nope


# -- not found -----------------------------------------------------------------------------------
def test_unknown_flow_names_flow_and_datastore(root):
    with pytest.raises(MetaflowNotFound) as err:
        Flow("NoSuchFlow")
    message = str(err.value)
    assert "NoSuchFlow" in message and root in message
    assert "--datastore" in message and "metadata(" in message


@pytest.mark.parametrize("lookup", [
    lambda: Run(f"{FLOW}/nope"),
    lambda: Flow(FLOW)["nope"],
    lambda: Step(f"{FLOW}/r1/nostep"),
    lambda: Run(f"{FLOW}/r1")["nostep"],
    lambda: Task(f"{FLOW}/r1/work/99"),
    lambda: Step(f"{FLOW}/r1/work")["99"],
    lambda: DataArtifact(f"{FLOW}/r1/work/9/nope"),
    lambda: Task(f"{FLOW}/r1/work/9")["nope"],
])
def test_unknown_children_are_not_found_and_key_errors(root, lookup):
    with pytest.raises(MetaflowNotFound) as err:
        lookup()
    assert isinstance(err.value, KeyError)  # Metaflow's obj[id] raises KeyError
    assert "nope" in str(err.value) or "99" in str(err.value) or "nostep" in str(err.value)
    assert "datastore" in str(err.value)


# -- datastore selection -------------------------------------------------------------------------
def test_metadata_forms(tmp_path):
    project = tmp_path / "project"
    (project / ".rayflow").mkdir(parents=True)
    assert metadata(str(project)) == f"local@{project / '.rayflow'}"
    assert get_metadata() == f"local@{project / '.rayflow'}"
    assert metadata(f"local@{project}/.rayflow") == f"local@{project / '.rayflow'}"
    assert metadata("s3://bucket/prefix/") == "s3@s3://bucket/prefix"
    assert metadata("s3@s3://bucket/prefix") == "s3@s3://bucket/prefix"
    with pytest.raises(ValueError):
        metadata("")


def test_default_datastore_follows_env(root, monkeypatch):
    client_datastores.default_metadata()
    monkeypatch.setenv("RAYFLOW_DATASTORE", root)
    assert get_metadata() == f"local@{root}"
    assert Flow(FLOW).latest_run.id == "r2"


def test_explicit_datastore_keyword(root, tmp_path):
    other = str(tmp_path / "elsewhere")
    metadata(other)
    with pytest.raises(MetaflowNotFound):
        Flow(FLOW)
    run = Run(f"{FLOW}/r1", datastore=root)
    assert run.datastore == f"local@{root}"
    assert run["work"]["9"].data.item == "a"  # children keep their parent's datastore
    assert Task(f"{FLOW}/r1/join/12", datastore=root).parent_tasks.__next__().data.item == "a"


# -- username and isolation from Ray -------------------------------------------------------------
def test_username_precedence(monkeypatch):
    monkeypatch.setenv("USER", "u")
    monkeypatch.setenv("METAFLOW_USER", "m")
    assert get_username() == "alice"
    monkeypatch.delenv("RAYFLOW_USER")
    assert get_username() == "m"
    monkeypatch.delenv("METAFLOW_USER")
    assert get_username() == "u"
    monkeypatch.delenv("USER")
    monkeypatch.setenv("USERNAME", "w")
    assert get_username() == "w"


def test_client_never_imports_ray():
    code = "import sys, rayflow.client; print('ray' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "False", "importing rayflow.client pulled in ray"


def test_artifact_values_load_once_per_object(root, monkeypatch):
    loads = []
    original = FlowDataStore.load_artifact
    monkeypatch.setattr(FlowDataStore, "load_artifact",
                        lambda self, info, what="": loads.append(info.sha) or
                        original(self, info, what))
    run = Run(f"{FLOW}/r1")
    assert run.data.total == 5 and run.data.total == 5
    task = run["work"]["9"]
    assert [a.id for a in task.artifacts] == ["alpha", "item", "items", "squared"]
    assert task.artifacts.item.sha and len(loads) == 1  # listing artifacts loads no bytes
    assert task.data.item == "a" and task["item"].data == "a"
    assert len(loads) == 2
