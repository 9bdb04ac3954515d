"""Gang start and distributed training: a @parallel step vs Ray Train's TorchTrainer (issue 28).

On one `ray.cluster_utils.Cluster` of 3 nodes (1 CPU each, on this machine) with a SeaweedFS S3
datastore (tests/s3server.py), in the same run:

- rayflow: `examples/distributed_training.py --workers 3` (a gang of 3, one per node, gloo).
  Gang start = from the `start` task's end (the gang is launched right after it) until the last
  member has joined the process group (after a barrier); training = the members' training loop.
- Ray Train: `TorchTrainer` with 3 workers (`ScalingConfig(num_workers=3)`) running the same
  model, data, batches and training function. Gang start = from `trainer.fit()` until the last
  worker is in its training function (Ray Train has joined the process group by then; a barrier
  makes it the last); training = the same loop, timed the same way.

Each system runs `--reps` times (after one warm-up run each, not counted); the table gives the
median. Targets (issue 28): gang start within 1.2x of Ray Train's, training within 1.1x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "multinode"))
sys.path.insert(0, os.path.dirname(HERE))

import scenarios  # noqa: E402, F401 - Ray's single-machine settings, before ray is imported
from _common import log, markdown_table, met, write_section  # noqa: E402
from s3server import SeaweedS3Server  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "distributed_training.py")
PARAMS = {"workers": 3, "epochs": 20, "samples": 1920, "batch": 96, "seed": 0}


def start_cluster(tmp: str):
    from ray.cluster_utils import Cluster

    common = {"num_cpus": 1, "temp_dir": os.path.join(tmp, "ray")}
    cluster = Cluster(initialize_head=True, head_node_args={**common, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(**common)
    cluster.wait_for_nodes()
    return cluster


def rayflow_once(cluster, datastore: str) -> dict:
    from rayflow import Run, namespace
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    loaded = load_flow(EXAMPLE)
    values = resolve_parameters(loaded.cls, {k: str(v) for k, v in PARAMS.items()})
    opts = RunOptions(datastore_url=datastore, address=cluster.address, progress=False)
    summary = RunLoop(loaded, values, opts).run()
    if not summary.successful:
        raise RuntimeError(f"the rayflow run failed: {summary.failures}")
    namespace(None)
    run = Run(summary.pathspec, datastore=datastore)
    launched = float(run["start"].task.metadata_dict["finished_at"])
    members = list(run["train"])
    joined = max(t.data.joined_at for t in members)
    return {"gang_start": joined - launched,
            "train": max(t.data.train_seconds for t in members),
            "diff": run["join"].task.data.max_diff}


def _train_loop(config: dict) -> None:
    # Runs in each Ray Train worker: the example's own model, data and loop.
    import torch
    import torch.distributed as dist
    from ray import train as ray_train

    sys.path.insert(0, os.path.dirname(EXAMPLE))
    import distributed_training as ex

    joined = torch.tensor([time.time()], dtype=torch.float64)
    dist.barrier()
    dist.all_reduce(joined, op=dist.ReduceOp.MAX)
    torch.set_num_threads(1)
    model = ray_train.torch.prepare_model(ex.make_model(config["features"], config["seed"]))
    t0 = time.time()
    ex.train(model, config["x"], config["y"], config["epochs"], config["batch"],
             dist.get_rank(), dist.get_world_size())
    dist.barrier()
    took = time.time() - t0
    if dist.get_rank() == 0:  # Ray Train 2's result keeps metrics only with a checkpoint
        with open(config["out"], "w") as fh:
            json.dump({"joined_at": float(joined.item()), "train": took}, fh)
    ray_train.report({"train": took})


def ray_train_once(storage: str) -> dict:
    """One TorchTrainer.fit(); rank 0 writes its timings to a file (every node is this
    machine)."""
    import distributed_training as ex
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    x, y = ex.make_data(PARAMS["samples"], ex.DistributedTrainingFlow.features, PARAMS["seed"])
    out = os.path.join(storage, f"timings-{time.time_ns()}.json")
    os.makedirs(storage, exist_ok=True)
    config = {"x": x, "y": y, "epochs": PARAMS["epochs"], "batch": PARAMS["batch"],
              "seed": PARAMS["seed"], "features": ex.DistributedTrainingFlow.features,
              "out": out}
    trainer = TorchTrainer(
        _train_loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=PARAMS["workers"], use_gpu=False,
                                     placement_strategy="SPREAD"),
        run_config=RunConfig(storage_path=storage, name=f"bench-{time.time_ns()}"))
    t0 = time.time()
    trainer.fit()
    with open(out) as fh:
        timings = json.load(fh)
    return {"gang_start": timings["joined_at"] - t0, "train": timings["train"]}


def wait_for_free_cpus(ray, cpus: int, timeout: float = 120.0) -> None:
    """Until Ray Train has given back its workers' CPUs (its controller lets them go a moment
    after fit() returns), so the next rayflow run does not wait for them."""
    deadline = time.time() + timeout
    while ray.available_resources().get("CPU", 0) < cpus and time.time() < deadline:
        time.sleep(0.5)


def measure(reps: int, tmp: str) -> dict:
    import ray

    with SeaweedS3Server() as server:
        os.environ.update(server.env())
        cluster = start_cluster(tmp)
        # Ray Train's controller polls the state API of "the" local Ray: name this one, or on
        # a machine with other Rays it polls the latest started.
        os.environ["RAY_ADDRESS"] = cluster.address
        try:
            sys.path.insert(0, os.path.dirname(EXAMPLE))
            out = {"rayflow": [], "ray_train": []}
            for i in range(reps + 1):
                datastore = f"s3://{server.bucket}/gang-bench-{i}"
                rf = rayflow_once(cluster, datastore)
                rt = ray_train_once(os.path.join(tmp, "ray-train"))
                wait_for_free_cpus(ray, 3)
                log(f"rep {i}{' (warm-up)' if i == 0 else ''}: rayflow {rf}, Ray Train {rt}")
                if i:
                    out["rayflow"].append(rf)
                    out["ray_train"].append(rt)
            return out
        finally:
            ray.shutdown()
            cluster.shutdown()


def report(results: dict, reps: int) -> None:
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("gang_start", "train")}
           for k, v in results.items()}
    ratio_start = med["rayflow"]["gang_start"] / med["ray_train"]["gang_start"]
    ratio_train = med["rayflow"]["train"] / med["ray_train"]["train"]
    rows = [["rayflow @parallel gang", f"{med['rayflow']['gang_start']:.2f}",
             f"{med['rayflow']['train']:.2f}", f"{ratio_start:.2f}x", f"{ratio_train:.2f}x"],
            ["Ray Train TorchTrainer", f"{med['ray_train']['gang_start']:.2f}",
             f"{med['ray_train']['train']:.2f}", "1.00x", "1.00x"]]
    diff = max(r["diff"] for r in results["rayflow"])
    body = (
        f"`examples/distributed_training.py` with {PARAMS}, against TorchTrainer running the "
        f"same model, data and loop, on one 3-node `ray.cluster_utils.Cluster` (1 CPU a node, "
        f"this machine), SeaweedFS S3 datastore. Median of {reps} runs each, after one warm-up "
        f"run each. Gang start: rayflow from the `start` task's end, Ray Train from `fit()`, "
        f"until the last member has joined the process group.\n\n"
        + markdown_table(["system", "gang start s", "training s", "start vs Ray Train",
                          "training vs Ray Train"], rows)
        + f"\n\nTargets: gang start within 1.2x: {met(ratio_start <= 1.2)}; training within "
        f"1.1x: {met(ratio_train <= 1.1)}. Largest weight difference of the rayflow runs to "
        f"one process: {diff:.1e}.\n")
    write_section("gang", "gang: @parallel gang start and DDP training vs Ray Train (issue 28)",
                  body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    tmp = tempfile.mkdtemp(prefix="gangb")  # short: Ray's socket paths live under it
    report(measure(args.reps, tmp), args.reps)


if __name__ == "__main__":
    main()
