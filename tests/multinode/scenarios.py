"""Run rayflow on a real multi-node Ray cluster emulated on this machine, and report as JSON.

`ray.cluster_utils.Cluster` starts three nodes here, each a real raylet with its own object
store, one CPU and its own custom resource (node_a is the head, node_b and node_c are workers).
The scenarios run in order on that one cluster, because starting it costs more than the runs:

1. artifact_across_nodes: a step pinned to node_a makes an array; a step pinned to node_b reads
   it and imports a module from the flow's folder, which only runtime_env shipped there.
2. local_datastore_refused: a local datastore on this multi-node cluster is refused before any
   task runs.
3. foreach_spread: a foreach spreads over all three nodes; each record names its node.
4. unschedulable: a step asking for a resource no node has fails after a bounded wait.
5. node_failure: node_c is killed (not gracefully) while a split runs on it; the run finishes on
   node_a and node_b, with exactly one DONE record per split.
6. pinned_to_dead_node: a step pinned to the dead node_c fails after a bounded wait.

This runs in its own process (tests/integration/test_multinode.py starts it) because the rest of
the suite holds one session-wide Ray, and a process can be joined to only one. It stops only the
processes its Cluster started. Usage:

    python tests/multinode/scenarios.py --tmp DIR --datastore s3://bucket/prefix --out out.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import sys
import threading
import time
import traceback

# Before ray is imported: Ray's single-machine mode, so every node, agent and worker listens on
# 127.0.0.1 only (otherwise Ray picks this machine's outward address and some servers bind to
# all interfaces). And token auth with a token of our own unless the caller chose: every process
# of the cluster inherits this environment, so they all agree.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
if "RAY_AUTH_MODE" not in os.environ:
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

HERE = os.path.dirname(os.path.abspath(__file__))
FLOWS = os.path.join(HERE, "flows")
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

# Notice a killed node in ~3 s instead of Ray's default ~30 s, so the test stays short. Ray's
# behaviour is the same, only sooner.
FAST_NODE_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                     "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}
NODE_RESOURCES = ("node_a", "node_b", "node_c")


class Env:
    """What every scenario gets: the cluster, its nodes by custom resource, and where to write."""

    def __init__(self, cluster, nodes: dict, tmp: str, datastore: str):
        self.cluster = cluster
        self.nodes = nodes          # "node_a" -> ray._private.node.Node
        self.tmp = tmp
        self.datastore = datastore

    def node_name(self, resource: str) -> str:
        """The node as task records name it: <node_id[:12]>@<hostname>."""
        import socket

        return f"{self.nodes[resource].node_id[:12]}@{socket.gethostname()}"

    def run(self, flow_file: str, params: dict | None = None, datastore: str | None = None):
        """Run one flow in-process through the Runner, joined to the cluster by address."""
        from rayflow.parameters import resolve_parameters
        from rayflow.runtime.flowfile import load_flow
        from rayflow.runtime.run_loop import RunLoop, RunOptions

        loaded = load_flow(os.path.join(FLOWS, flow_file))
        values = resolve_parameters(loaded.cls, {k: str(v) for k, v in (params or {}).items()})
        opts = RunOptions(datastore_url=datastore or self.datastore,
                          address=self.cluster.address, progress=False)
        return RunLoop(loaded, values, opts)


def _tasks(datastore: str, pathspec: str, step: str) -> list:
    from rayflow import Step, namespace

    namespace(None)
    return list(Step(f"{pathspec}/{step}", datastore=datastore))


def _failure_text(summary) -> str:
    from rayflow.runtime.errors import raise_for_failures

    try:
        raise_for_failures(summary)
    except Exception as exc:  # noqa: BLE001 - we report whatever the user would see
        return f"{type(exc).__name__}: {exc}"
    return ""


# ----------------------------------------------------------------------------------- scenarios
def artifact_across_nodes(env: Env) -> dict:
    from rayflow import Run, namespace

    summary = env.run("mn_artifact_flow.py").run()
    out = {"status": summary.status, "failure": _failure_text(summary)}
    if not summary.successful:
        return out
    namespace(None)
    run = Run(summary.pathspec, datastore=env.datastore)
    start, read = run["start"].task, run["read"].task
    out.update(
        made_on=start.data.made_on, read_on=read.data.read_on,
        start_record_node=start.metadata_dict["node"], read_record_node=read.lineage["node"],
        node_a=env.nodes["node_a"].node_id, node_b=env.nodes["node_b"].node_id,
        node_a_name=env.node_name("node_a"), node_b_name=env.node_name("node_b"),
        total=read.data.total, expected_total=sum(range(250_000)),
        helper_dir=read.data.helper_dir, flows_dir=FLOWS,
        helper_square=read.data.helper_square)
    return out


def local_datastore_refused(env: Env) -> dict:
    local = os.path.join(env.tmp, "local-ds")
    t0 = time.time()
    try:
        summary = env.run("mn_foreach_flow.py", {"n": 3}, datastore=local).run()
    except Exception as exc:  # noqa: BLE001 - the refusal is what we are looking for
        error = {"type": type(exc).__name__, "message": str(exc),
                 "is_rayflow_error": _is_rayflow_error(exc)}
        summary = None
    else:
        error = None
    task_records = glob.glob(os.path.join(local, "*", "*", "*", "*", "*.json"))
    run_statuses = []
    for path in glob.glob(os.path.join(local, "*", "*", "_run.json")):
        with open(path) as fh:
            run_statuses.append(json.load(fh).get("status"))
    return {"error": error, "status": summary.status if summary else None,
            "task_records": task_records, "run_statuses": run_statuses,
            "seconds": time.time() - t0}


def _is_rayflow_error(exc: BaseException) -> bool:
    from rayflow.exceptions import RayflowException

    return isinstance(exc, RayflowException)


def foreach_spread(env: Env) -> dict:
    n = 9
    summary = env.run("mn_foreach_flow.py", {"n": n, "seconds": 0.5}).run()
    out = {"status": summary.status, "failure": _failure_text(summary), "n": n,
           "all_nodes": sorted(env.node_name(r) for r in NODE_RESOURCES)}
    if not summary.successful:
        return out
    tasks = _tasks(env.datastore, summary.pathspec, "work")
    out["records"] = [{"task_id": t.id, "index": t.index, "node": t.metadata_dict["node"],
                       "node_id": t.data.node_id, "square": t.data.square} for t in tasks]
    return out


def unschedulable(env: Env) -> dict:
    t0 = time.time()
    summary = env.run("mn_unschedulable_flow.py").run()
    failures = [{"step": f.step, "error": f.error.to_json()} for f in summary.failures]
    return {"status": summary.status, "seconds": time.time() - t0, "failures": failures,
            "failure": _failure_text(summary)}


def node_failure(env: Env) -> dict:
    """Kill node_c, without grace, while one of its splits is running."""
    from rayflow.datastore import FlowDataStore

    # Long enough that a split seen starting on node_c is still running when node_c dies.
    n, seconds = 10, 2.0
    markers = os.path.join(env.tmp, "markers")
    os.makedirs(markers, exist_ok=True)
    victim = env.nodes["node_c"]
    runner = env.run("mn_foreach_flow.py", {"n": n, "seconds": seconds, "marker_dir": markers})
    box: dict = {}

    def drive():
        try:
            box["summary"] = runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported, not raised, from a thread
            box["error"] = traceback.format_exc()
            box["exc"] = exc

    thread = threading.Thread(target=drive, name="rayflow-run", daemon=True)
    t0 = time.time()
    thread.start()
    victim_glob = os.path.join(markers, f"*.{victim.node_id}.started")
    while not glob.glob(victim_glob) and thread.is_alive() and time.time() - t0 < 120:
        time.sleep(0.02)
    killed_while_running = sorted(_marker_index(p) for p in glob.glob(victim_glob))
    if not killed_while_running:
        thread.join(120)
        return {"error": "no split ever started on node_c", "run_error": box.get("error")}
    env.cluster.remove_node(victim, allow_graceful=False)
    removed_at = time.time()
    thread.join(180)
    out = {"n": n, "removed_after_s": removed_at - t0, "seconds": time.time() - t0,
           "victim": env.node_name("node_c"), "victim_markers": killed_while_running,
           "run_error": box.get("error"), "finished": not thread.is_alive(),
           "removed_at": removed_at}
    summary = box.get("summary")
    if summary is None:
        return out
    out.update(status=summary.status, failure=_failure_text(summary))
    ds = FlowDataStore.from_url(env.datastore, "SpreadFlow")
    out["task_dirs"] = sorted(ds.list_tasks(summary.run_id, "work"))
    out["done_ids"] = sorted(ds.done_task_ids(summary.run_id, "work"))
    if summary.successful:
        tasks = _tasks(env.datastore, summary.pathspec, "work")
        out["records"] = [{"task_id": t.id, "index": t.index, "node": t.metadata_dict["node"],
                           "attempt": t.metadata_dict["attempt"], "square": t.data.square,
                           "started_at": t.metadata_dict["started_at"]} for t in tasks]
        from rayflow import Run

        out["joined_squares"] = Run(summary.pathspec, datastore=env.datastore).data.squares
    out["all_markers"] = sorted(os.path.basename(p) for p in glob.glob(f"{markers}/*"))
    return out


def _marker_index(path: str) -> int:
    return int(os.path.basename(path).split(".", 1)[0])


def pinned_to_dead_node(env: Env) -> dict:
    t0 = time.time()
    summary = env.run("mn_pinned_flow.py").run()
    failures = [{"step": f.step, "error": f.error.to_json()} for f in summary.failures]
    return {"status": summary.status, "seconds": time.time() - t0, "failures": failures,
            "failure": _failure_text(summary)}


SCENARIOS = [artifact_across_nodes, local_datastore_refused, foreach_spread, unschedulable,
             node_failure, pinned_to_dead_node]


# ------------------------------------------------------------------------------------- driver
def start_cluster(tmp: str):
    from ray.cluster_utils import Cluster

    common = {"num_cpus": 1, "temp_dir": os.path.join(tmp, "ray")}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "resources": {"node_a": 1}, "include_dashboard": False,
        "_system_config": FAST_NODE_FAILURE})
    nodes = {"node_a": cluster.head_node}
    for name in NODE_RESOURCES[1:]:
        nodes[name] = cluster.add_node(**common, resources={name: 1})
    cluster.wait_for_nodes()
    return cluster, nodes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tmp", required=True, help="scratch folder; Ray's temp_dir goes here")
    parser.add_argument("--datastore", required=True, help="s3://bucket/prefix shared by nodes")
    parser.add_argument("--out", required=True, help="where the JSON report goes")
    parser.add_argument("--only", nargs="*", help="run only these scenarios (in order)")
    args = parser.parse_args(argv)

    import ray

    t0 = time.time()
    cluster, nodes = start_cluster(args.tmp)
    report = {"cluster_start_s": time.time() - t0, "scenarios": {}}
    env = Env(cluster, nodes, args.tmp, args.datastore)
    try:
        for scenario in SCENARIOS:
            if args.only and scenario.__name__ not in args.only:
                continue
            began = time.time()
            try:
                result = scenario(env)
            except Exception:  # noqa: BLE001 - one broken scenario must not hide the rest
                result = {"crashed": traceback.format_exc()}
            result["wall_s"] = time.time() - began
            report["scenarios"][scenario.__name__] = result
            print(f"[scenarios] {scenario.__name__}: {result['wall_s']:.1f} s", flush=True)
            _write(args.out, report)
    finally:
        ray.shutdown()
        cluster.shutdown()
    report["total_s"] = time.time() - t0
    _write(args.out, report)
    return 0


def _write(path: str, report: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
