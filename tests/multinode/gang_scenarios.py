"""@parallel gangs on a real three-node Ray cluster (ray.cluster_utils.Cluster on this machine),
reported as JSON for tests/integration/test_gang_multinode.py.

The head has 2 CPUs and the two workers 1 each: a gang of 4 one-CPU members fills all three
nodes. Scenarios, in order, on one cluster:

1. spread: 4 members on 3 nodes; each records its node, node_index and main_ip, and the
   members all-reduce their ranks with gloo.
2. too_big: a gang of 5 one-CPU members cannot be placed on 4 CPUs: it fails after
   RAYFLOW_GANG_START_TIMEOUT with one message.
3. member_killed: member 2 kills its own process mid-step on the first attempt while the
   others wait in an all-reduce; the gang fails, and @retry runs all 4 again.
4. resume: a run whose end step fails is resumed; the finished gang is cloned, not run again.

Usage: python tests/multinode/gang_scenarios.py --tmp DIR --datastore s3://bucket/p --out f.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import scenarios as base  # noqa: E402 - sets Ray's environment before ray is imported


def _run(env, params: dict, resume=None):
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    loaded = load_flow(os.path.join(base.FLOWS, "mn_gang_flow.py"))
    values = resolve_parameters(loaded.cls, {k: str(v) for k, v in params.items()})
    opts = RunOptions(datastore_url=env.datastore, address=env.cluster.address,
                      progress=False, resume=resume)
    return RunLoop(loaded, None if resume else values, opts).run()


def _join_rows(env, summary) -> list:
    from rayflow import Run, namespace

    namespace(None)
    return Run(summary.pathspec, datastore=env.datastore)["join"].task.data.rows


def spread(env) -> dict:
    summary = _run(env, {"members": 4})
    out = {"status": summary.status, "failure": base._failure_text(summary),
           "all_nodes": sorted(n.node_id for n in env.nodes.values())}
    if summary.successful:
        out["rows"] = _join_rows(env, summary)
    return out


def too_big(env) -> dict:
    t0 = time.time()
    summary = _run(env, {"members": 5})
    return {"status": summary.status, "seconds": time.time() - t0,
            "failures": [{"step": f.step, "error": f.error.to_json()} for f in summary.failures]}


def member_killed(env) -> dict:
    markers = os.path.join(env.tmp, "killed-markers")
    os.makedirs(markers, exist_ok=True)
    t0 = time.time()
    summary = _run(env, {"members": 4, "mode": "kill", "markers": markers})
    out = {"status": summary.status, "failure": base._failure_text(summary),
           "seconds": time.time() - t0, "markers": sorted(os.listdir(markers))}
    if summary.successful:
        out["rows"] = _join_rows(env, summary)
    return out


def resume(env) -> dict:
    from rayflow import Run, namespace
    from rayflow.runtime.resume import ResumeRequest

    markers = os.path.join(env.tmp, "resume-markers")
    os.makedirs(markers, exist_ok=True)
    open(os.path.join(markers, "fail-end"), "w").close()
    first = _run(env, {"members": 4, "markers": markers})
    os.remove(os.path.join(markers, "fail-end"))
    ran_first = sorted(os.listdir(markers))
    second = _run(env, {}, resume=ResumeRequest(origin_run_id=first.run_id))
    namespace(None)
    out = {"first": first.status, "second": second.status,
           "failure": base._failure_text(second), "ran_first": ran_first,
           "ran_after": sorted(os.listdir(markers))}
    if second.successful:
        train = Run(second.pathspec, datastore=env.datastore)["train"]
        out["origins"] = [t.metadata_dict.get("origin-task-id") for t in train]
        out["control"] = [t.id for t in train.control_tasks()]
    return out


SCENARIOS = [spread, too_big, member_killed, resume]


def start_cluster(tmp: str):
    from ray.cluster_utils import Cluster

    common = {"temp_dir": os.path.join(tmp, "ray")}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "num_cpus": 2, "resources": {"node_a": 1}, "include_dashboard": False,
        "_system_config": base.FAST_NODE_FAILURE})
    nodes = {"node_a": cluster.head_node}
    for name in base.NODE_RESOURCES[1:]:
        nodes[name] = cluster.add_node(**common, num_cpus=1, resources={name: 1})
    cluster.wait_for_nodes()
    return cluster, nodes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--datastore", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)

    import ray

    t0 = time.time()
    cluster, nodes = start_cluster(args.tmp)
    report = {"cluster_start_s": time.time() - t0, "scenarios": {}}
    env = base.Env(cluster, nodes, args.tmp, args.datastore)
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
            print(f"[gang_scenarios] {scenario.__name__}: {result['wall_s']:.1f} s", flush=True)
            base._write(args.out, report)
    finally:
        ray.shutdown()
        cluster.shutdown()
    report["total_s"] = time.time() - t0
    base._write(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
