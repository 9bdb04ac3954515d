"""The identity-resolution flow on a three-node Ray cluster (ray.cluster_utils.Cluster here,
one CPU a node), S3 datastore shared by the nodes; writes a JSON report: whether its clusters
are the single-task union-find's over the run's own ids and matched pairs, bit for bit, and on
which nodes the connected components' tasks ran.

    python tests/multinode/identity_cluster.py --tmp DIR --datastore s3://b/p --data DIR \
        --out report.json

Started by tests/integration/test_identity_multinode.py in its own process (a process joins
one Ray). It stops only the processes its Cluster started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
if "RAY_AUTH_MODE" not in os.environ:
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
FLOW = os.path.join(ROOT, "examples", "identity_resolution", "flow.py")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--datastore", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import pyarrow.parquet as pq
    import ray
    from ray.cluster_utils import Cluster

    from examples.identity_resolution import model as er
    from rayflow import Run, namespace
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    t0 = time.time()
    common = {"num_cpus": 1, "temp_dir": os.path.join(args.tmp, "ray")}
    cluster = Cluster(initialize_head=True, head_node_args={**common,
                                                            "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(**common)
    cluster.wait_for_nodes()
    report = {"nodes": len(cluster.list_all_nodes())}
    try:
        output = os.path.join(args.tmp, "out")
        loaded = load_flow(FLOW)
        values = resolve_parameters(loaded.cls, {"data": args.data, "partitions": "3",
                                                 "cluster_tasks": "3", "output": output})
        summary = RunLoop(loaded, values, RunOptions(datastore_url=args.datastore,
                                                     address=cluster.address,
                                                     progress=False)).run()
        report["status"] = summary.status
        if summary.successful:
            namespace(None)
            run = Run(summary.pathspec, datastore=args.datastore)
            ids = er.concat_ids([t.data.ids for t in run["prepare"]])
            single = er.cluster(ids, [t.data.edges for t in run["score"]])
            cols = ["source", "id", "cluster_id", "cluster_size"]
            got = pq.read_table(f"{output}/clusters.parquet").select(cols)
            key = [("id", "ascending")]
            report.update(
                same=got.sort_by(key).equals(single.select(cols).sort_by(key)),
                records=got.num_rows, f1=run.data.metrics.get("f1"),
                single_f1=(er.metrics(single) or {}).get("f1"),
                cc_tasks=run["cluster"].task.data.cc_tasks,
                step_nodes=sorted({t.metadata_dict.get("node", "") for s in run
                                   for t in s}))
    finally:
        ray.shutdown()
        cluster.shutdown()
    report["seconds"] = time.time() - t0
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
