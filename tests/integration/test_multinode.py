"""rayflow on a real three-node Ray cluster (ray.cluster_utils.Cluster on this machine), with the
SeaweedFS S3 datastore shared by all nodes: artifacts across nodes, the flow's folder shipped by
runtime_env, a foreach over all nodes, a node killed mid-foreach, and tasks that no alive node
can run.

The cluster lives in a subprocess (tests/multinode/scenarios.py) because this session already
holds a Ray of its own, and one process joins one Ray. It runs every scenario once, in order,
and writes a JSON report; each test below checks one scenario of that report.
"""

from __future__ import annotations

import pytest

from tests.multinode.cluster_run import run_cluster_script

pytestmark = pytest.mark.integration

UNSCHEDULABLE_TIMEOUT_S = 5


@pytest.fixture(scope="module")
def report(s3_server, tmp_path_factory) -> dict:
    return run_cluster_script(
        "scenarios.py", s3_server, str(tmp_path_factory.mktemp("mn")), "multinode",
        timeout=280, env={"RAYFLOW_UNSCHEDULABLE_TIMEOUT": str(UNSCHEDULABLE_TIMEOUT_S)})



def scenario(report: dict, name: str) -> dict:
    result = report["scenarios"].get(name)
    if result is None:
        pytest.fail(f"scenario {name} did not run; log:\n{report['_log']}")
    if "crashed" in result:
        pytest.fail(f"scenario {name} crashed:\n{result['crashed']}")
    return result


def test_artifact_made_on_one_node_is_read_on_another(report):
    r = scenario(report, "artifact_across_nodes")
    assert r["status"] == "success", r["failure"]
    assert r["made_on"] == r["node_a"] and r["read_on"] == r["node_b"]
    assert r["total"] == r["expected_total"]
    # The task records (read back with the client) name the node each task ran on.
    assert r["start_record_node"] == r["node_a_name"]
    assert r["read_record_node"] == r["node_b_name"]


def test_flow_folder_reaches_other_nodes_through_runtime_env(report):
    r = scenario(report, "artifact_across_nodes")
    assert r["status"] == "success", r["failure"]
    assert r["helper_square"] == 49
    # Imported from Ray's unpacked working_dir, not from this checkout.
    assert "runtime_resources" in r["helper_dir"] and r["helper_dir"] != r["flows_dir"]


def test_local_datastore_is_refused_on_a_multinode_cluster(report):
    r = scenario(report, "local_datastore_refused")
    assert r["error"] is not None, "a local datastore on a 3-node cluster was accepted"
    assert r["error"]["type"] == "DataStoreError" and r["error"]["is_rayflow_error"]
    assert "s3://" in r["error"]["message"] and "3 nodes" in r["error"]["message"]
    assert r["task_records"] == []  # refused before any task ran
    assert "running" not in r["run_statuses"]  # and no run is left looking alive


def test_foreach_spreads_over_all_nodes(report):
    r = scenario(report, "foreach_spread")
    assert r["status"] == "success", r["failure"]
    records = r["records"]
    assert sorted(rec["index"] for rec in records) == list(range(r["n"]))
    assert all(rec["square"] == rec["index"] ** 2 for rec in records)
    assert {rec["node"] for rec in records} == set(r["all_nodes"])
    for rec in records:  # the record's node is the node the step itself saw
        assert rec["node"].split("@")[0] == rec["node_id"][:12]


def test_node_removed_mid_foreach_loses_no_split_and_records_none_twice(report):
    r = scenario(report, "node_failure")
    assert r["finished"], "the run did not finish after node_c was removed"
    assert r.get("status") == "success", r.get("failure") or r.get("run_error") or r
    n = r["n"]
    ids = [str(i + 1) for i in range(n)]  # start is task 0; split i is task i + 1
    assert sorted(r["task_dirs"]) == sorted(ids)
    assert sorted(r["done_ids"]) == sorted(ids)  # exactly one DONE task per split
    records = r["records"]
    assert sorted(rec["index"] for rec in records) == list(range(n))
    assert all(rec["square"] == rec["index"] ** 2 for rec in records)
    assert r["joined_squares"] == [i * i for i in range(n)]
    # The split that was running on node_c when it died ran again on a node that remains.
    by_index = {rec["index"]: rec for rec in records}
    for index in r["victim_markers"]:
        assert by_index[index]["node"] != r["victim"], by_index[index]
    # Nothing started after node_c was removed ran there.
    late = [rec for rec in records if rec["started_at"] > r["removed_at"]]
    assert late and all(rec["node"] != r["victim"] for rec in late)


@pytest.mark.parametrize("name, step, resource", [
    ("unschedulable", "impossible", "no_such_resource"),
    ("pinned_to_dead_node", "pinned", "node_c"),
])
def test_task_no_alive_node_can_run_fails_after_a_bounded_wait(report, name, step, resource):
    r = scenario(report, name)
    assert r["status"] == "failed"
    assert r["seconds"] < UNSCHEDULABLE_TIMEOUT_S + 30, "it waited far past the bound"
    [failure] = r["failures"]
    assert failure["step"] == step
    assert failure["error"]["kind"] == "scheduling"
    assert failure["error"]["type"] == "rayflow.exceptions.SchedulingError"
    message = failure["error"]["message"]
    assert f"Step {step!r}" in message and f"{resource}=1" in message
    assert "no alive node" in message and "@resources" in message
