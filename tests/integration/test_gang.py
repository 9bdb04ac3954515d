"""@parallel gangs on the session's real Ray (one node): every member sees its own node index
and the same control task, a member's failure (an exception, a killed process) fails the gang,
stops the other members and @retry runs the whole gang again, @catch and @timeout work per
member, and resume clones a finished gang and runs an unfinished one again whole. The
multi-node cases are in test_gang_multinode.py."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from rayflow import Run

pytestmark = pytest.mark.integration
FLOWS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flows")
FLOW = os.path.join(FLOWS, "gang_retry_flow.py")


def test_members_see_their_index_the_control_task_and_torchrun_env(run_flow, datastore,
                                                                  global_namespace):
    s = run_flow("parallel_flow.py", {"num": 2})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    tasks = sorted(run["train"], key=lambda t: t.data.node_index)
    control = run["train"].control_task
    assert [t.data.node_index for t in tasks] == [0, 1]
    assert [t.data.item for t in tasks] == [0, 1]  # self.input is the node index
    assert control.id == tasks[0].id and control.data.node_index == 0
    assert {t.data.control_task_id for t in tasks} == {control.id}
    assert all(t.data.is_parallel and t.data.num_nodes == 2 for t in tasks)
    envs = [t.data.env for t in tasks]
    assert [e["RANK"] for e in envs] == ["0", "1"] and {e["WORLD_SIZE"] for e in envs} == {"2"}
    assert len({(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs}) == 1
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1"]  # both on this one node
    assert [t.metadata_dict.get("parallel-world-size") for t in tasks] == ["2", "2"]
    assert run["join"].task.data.members == [(0, 0, 2, control.id), (1, 1, 2, control.id)]
    from rayflow.graph.info import graph_info
    from rayflow.runtime.flowfile import load_flow

    steps = graph_info(load_flow(os.path.join(FLOWS, "parallel_flow.py")).graph)["steps"]
    assert steps["start"]["type"] == "split-parallel" and steps["start"]["num_parallel"] == 0


def _markers(folder) -> list[tuple[int, int, int]]:
    return sorted(tuple(int(x) for x in name.split(".")) for name in os.listdir(folder)
                  if name[0].isdigit())


@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_failed_member_fails_the_gang_and_retry_runs_it_whole(run_flow, datastore, tmp_path,
                                                                global_namespace, mode):
    markers = tmp_path / "markers"
    markers.mkdir()
    t0 = time.time()
    s = run_flow("gang_retry_flow.py", {"mode": mode, "markers": str(markers)})
    assert s.successful, s.failures
    assert time.time() - t0 < 200, "member 0 of the failed attempt was not stopped"
    seen = _markers(markers)
    assert sorted((i, a) for i, a, _ in seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # The member that was still running when the gang failed was killed, not left running.
    [(_, _, pid)] = [m for m in seen if m[:2] == (0, 0)]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    run = Run(s.pathspec, datastore=datastore)
    assert run["join"].task.data.attempts == [1, 1]
    assert sorted(t.current_attempt for t in run["train"]) == [1, 1]


def test_a_gang_without_retries_fails_once_with_the_members_error(cli, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = cli("run", FLOW, "--mode", "raise", "--markers", str(markers),
               env={"GANG_TEST_RETRIES": "0"}, check=1)
    assert "member 1 failed on purpose" in proc.stderr
    # One failure, the member's own: not a second one for the member the gang stopped.
    assert proc.stderr.count("Step failed:") == 1 and "cancelled" not in proc.stderr, \
        proc.stderr


def test_catch_and_timeout_work_per_member(run_flow, datastore, global_namespace):
    s = run_flow("gang_catch_flow.py")
    assert s.successful, s.failures
    caught = Run(s.pathspec, datastore=datastore)["join"].task.data.caught
    assert [index for index, _ in caught] == [0, 1]
    assert "ValueError" in caught[0][1] and "Timeout" in caught[1][1]


def _latest(datastore):
    from rayflow import Flow

    return Flow("GangRetryFlow", datastore=datastore).latest_run


def test_resume_clones_a_finished_gang(cli, datastore, tmp_path, global_namespace):
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "fail-end").touch()
    cli("run", FLOW, "--mode", "none", "--markers", str(markers), check=1)
    assert len(_markers(markers)) == 2
    (markers / "fail-end").unlink()
    cli("resume", FLOW, check=0)
    assert len(_markers(markers)) == 2  # no member ran again
    run = _latest(datastore)
    members = list(run["train"])
    assert run.successful and len(members) == 2
    assert all(t.metadata_dict.get("origin-task-id") for t in members)
    assert run["train"].control_task is not None


def test_resume_runs_an_unfinished_gang_again_whole(cli, datastore, tmp_path,
                                                    global_namespace):
    markers = tmp_path / "markers"
    markers.mkdir()
    cli("run", FLOW, "--mode", "once", "--markers", str(markers),
        env={"GANG_TEST_RETRIES": "0"}, check=1)
    first = _markers(markers)
    assert [i for i, _, _ in first] == [0, 1]  # member 0 finished, member 1 failed
    cli("resume", FLOW, check=0)
    again = [m for m in _markers(markers) if m not in first]
    assert sorted(i for i, _, _ in again) == [0, 1]  # both ran again, member 0 too
    run = _latest(datastore)
    assert run.successful
    assert not any(t.metadata_dict.get("origin-task-id") for t in run["train"])


def test_distributed_training_example_matches_one_process(run_flow, datastore,
                                                          global_namespace):
    example = os.path.join(os.path.dirname(FLOWS), "..", "examples", "distributed_training.py")
    s = run_flow(os.path.abspath(example), {"workers": 2, "epochs": 3, "samples": 512})
    assert s.successful, s.failures
    join = Run(s.pathspec, datastore=datastore)["join"].task.data
    assert join.max_member_diff == 0.0 and join.max_diff < 1e-4
