"""@parallel gangs on a real three-node Ray cluster (ray.cluster_utils.Cluster on this machine,
SeaweedFS S3 as the shared datastore): 4 members on 3 nodes each see their own node_index and
the same main_ip, and their gloo all-reduce is right; a gang too big for the cluster fails
after a bounded wait with one message; a member killed mid-step fails the gang and @retry runs
all members again; resume clones a finished gang.

The cluster lives in a subprocess (tests/multinode/gang_scenarios.py), as in test_multinode.py:
this session already holds a Ray of its own.
"""

from __future__ import annotations

import pytest

from tests.multinode.cluster_run import run_cluster_script

pytestmark = pytest.mark.integration

GANG_START_TIMEOUT_S = 5


@pytest.fixture(scope="module")
def report(s3_server, tmp_path_factory) -> dict:
    return run_cluster_script(
        "gang_scenarios.py", s3_server, str(tmp_path_factory.mktemp("gang")), "gang",
        timeout=420, env={"RAYFLOW_GANG_START_TIMEOUT": str(GANG_START_TIMEOUT_S)})


def scenario(report: dict, name: str) -> dict:
    result = report["scenarios"].get(name)
    if result is None:
        pytest.fail(f"scenario {name} did not run; log:\n{report['_log']}")
    if "crashed" in result:
        pytest.fail(f"scenario {name} crashed:\n{result['crashed']}")
    return result


def test_four_members_on_three_nodes_see_their_index_and_one_main_ip(report):
    r = scenario(report, "spread")
    assert r["status"] == "success", r["failure"]
    rows = r["rows"]  # (member, node id, main_ip, reduced, attempt)
    assert [row[0] for row in rows] == [0, 1, 2, 3]
    assert {row[1] for row in rows} == set(r["all_nodes"])  # every node runs a member
    assert len({row[2] for row in rows}) == 1  # one main_ip: the control member's node
    assert all(row[3] == 1 + 2 + 3 + 4 for row in rows)  # the all-reduce summed every rank


def test_a_gang_too_big_for_the_cluster_fails_with_one_message(report):
    r = scenario(report, "too_big")
    assert r["status"] == "failed"
    assert r["seconds"] < GANG_START_TIMEOUT_S + 60, "it waited far past the bound"
    [failure] = r["failures"]
    assert failure["step"] == "train"
    error = failure["error"]
    assert error["kind"] == "scheduling" and error["type"] == "rayflow.exceptions.SchedulingError"
    message = error["message"]
    assert "Step 'train' is a @parallel step of 5 members, each asking for CPU=1" in message
    assert "strategy SPREAD" in message and "RAYFLOW_GANG_START_TIMEOUT" in message


def test_a_member_killed_mid_step_fails_the_gang_and_retry_runs_it_whole(report):
    r = scenario(report, "member_killed")
    assert r["status"] == "success", r["failure"]
    attempts = sorted(tuple(int(x) for x in m.split(".")[:2]) for m in r["markers"])
    assert attempts == [(i, a) for i in range(4) for a in (0, 1)]  # every member, twice
    assert [row[4] for row in r["rows"]] == [1, 1, 1, 1]
    assert all(row[3] == 10 for row in r["rows"])


def test_resume_clones_a_finished_gang(report):
    r = scenario(report, "resume")
    assert r["first"] == "failed" and r["second"] == "success", r["failure"]
    assert r["ran_after"] == r["ran_first"] and len(r["ran_first"]) == 4  # none ran again
    assert len(r["origins"]) == 4 and all(r["origins"])
    assert len(r["control"]) == 1
