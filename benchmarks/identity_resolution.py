"""The identity-resolution job on one million records: time, throughput, F1, scaling, memory.

    .venv/bin/python benchmarks/identity_resolution.py [--records N] [--quick]

One dataset (generated once, seed fixed, not timed with the job), then in the same run:
1. Single-process baseline: `algorithm.single_process_baseline`, the same functions the flow's
   steps call, one after another in this process (one core, no Ray, no checkpoints).
2. The flow, in-process Runner on a Ray started here with 2 CPUs, after a small warm-up run:
   at most 1 task in flight ("1 worker"), then at most 2 ("2 workers"). Local datastore on
   disk, so every task is also checkpointed.
3. The flow as a user runs it: `rayflow run ... --data DIR` as a subprocess (Ray start-up and
   shutdown included), 2 workers.
4. Memory: the largest RSS of any one Ray worker process during a 2-worker run, at N and at
   N/4, sampled every 50 ms; a job whose memory is bounded by partition size keeps it flat.

Wall time is the Runner's (or subprocess's) wall, records/s and pairs/s divide by it; F1 and
pair counts come from the run's own metrics file. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import psutil
import pyarrow as pa
from _common import (
    ROOT,
    VENV_BIN,
    log,
    markdown_table,
    met,
    mib,
    private_ray_env,
    ray_init,
    scratch_dir,
    write_section,
)

sys.path.insert(0, ROOT)
from examples.identity_resolution import algorithm, generate

FLOW = os.path.join(ROOT, "examples", "identity_resolution", "flow.py")
TARGET_WALL_S, TARGET_F1, TARGET_SPEEDUP = 120.0, 0.95, 1.7


class WorkerRssPeak:
    """Largest RSS of any one Ray worker process started by this script (the machine may be
    shared, so only descendants of this process count) while the block runs."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.interval):
            for proc in me.children(recursive=True):
                try:
                    cmd = " ".join(proc.cmdline())
                    if cmd.startswith("ray::") and "Agent" not in cmd:  # task workers only
                        self.peak = max(self.peak, proc.memory_info().rss)
                except psutil.Error:
                    continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_dataset(records: int, seed: int) -> str:
    path = scratch_dir(f"identity-{records}-")
    t0 = time.perf_counter()
    table, truth = generate.generate(records, seed)
    generate.write_dataset(table, truth, path)
    log(f"generated {records:,} records into {path} in {time.perf_counter() - t0:.1f} s")
    return path


def run_baseline(data: str) -> dict:
    table = pa.concat_tables([generate.read_parquet(s) for s in generate.list_shards(data)])
    t0 = time.perf_counter()
    result = algorithm.single_process_baseline(table)
    wall = time.perf_counter() - t0
    f1 = algorithm.pairwise_metrics(result.entities, generate.read_truth(data))["f1"]
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.stage_seconds.items())
    log(f"baseline: {wall:.1f} s ({stages})")
    return {"wall": wall, "records": result.records, "pairs": result.candidates, "f1": f1}


def run_flow(data: str, workers: int, loaded, out_dir: str) -> dict:
    """One in-process Runner run; wall, metrics, and the worker RSS peak."""
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.runner import Runner, RunOptions

    output = os.path.join(out_dir, f"entities-{workers}w.parquet")
    params = resolve_parameters(loaded.cls, {"data": data, "output": output})
    options = RunOptions(datastore_url=os.path.join(out_dir, "ds"), max_in_flight=workers,
                         progress=False)
    with WorkerRssPeak() as rss:
        t0 = time.perf_counter()
        summary = Runner(loaded, params, options).run()
        wall = time.perf_counter() - t0
    if not summary.successful:
        raise SystemExit(f"run {summary.pathspec} failed: {summary.failures}")
    with open(output.rsplit(".", 1)[0] + ".metrics.json") as fh:
        m = json.load(fh)
    log(f"flow, {workers} worker(s): {wall:.1f} s, F1 {m.get('f1', float('nan')):.4f}, "
        f"worker RSS peak {mib(rss.peak)}")
    return {"wall": wall, "records": m["records"], "pairs": m["candidate_pairs"],
            "f1": m.get("f1"), "rss": rss.peak}


def run_cli(data: str, out_dir: str) -> dict | None:
    """`rayflow run` as a subprocess; None (and the reason, logged) if it did not finish."""
    output = os.path.join(out_dir, "entities-cli.parquet")
    cmd = [os.path.join(VENV_BIN, "rayflow"), "run", FLOW, "--data", data, "--output", output,
           "--datastore", os.path.join(out_dir, "ds-cli"), "--quiet"]
    env, ray_tmp = private_ray_env(os.environ)  # its own Ray, as on a clean machine
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              check=False, timeout=600)
    except subprocess.TimeoutExpired:
        log("cold `rayflow run` did not finish in 600 s; left out of the table")
        return None
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        log(f"cold `rayflow run` exited {proc.returncode} ({last}); left out of the table")
        return None
    with open(output.rsplit(".", 1)[0] + ".metrics.json") as fh:
        m = json.load(fh)
    log(f"cold `rayflow run`: {wall:.1f} s")
    return {"wall": wall, "records": m["records"], "pairs": m["candidate_pairs"],
            "f1": m.get("f1")}


def row(label: str, r: dict, one_worker: dict | None, baseline: dict | None) -> list:
    return [label, f"{r['wall']:.1f}", f"{r['records'] / r['wall']:,.0f}",
            f"{r['pairs'] / r['wall']:,.0f}", f"{r['f1']:.4f}" if r.get("f1") else "-",
            mib(r["rss"]) if r.get("rss") else "-",
            f"{one_worker['wall'] / r['wall']:.2f}x" if one_worker else "-",
            f"{baseline['wall'] / r['wall']:.2f}x" if baseline else "-"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2,
                        help="runs of each worker count; the fastest is reported")
    parser.add_argument("--quick", action="store_true",
                        help="200,000 records, one run each, no CLI run")
    args = parser.parse_args()
    records = 200_000 if args.quick else args.records
    reps = 1 if args.quick else args.reps

    data, small = make_dataset(records, args.seed), make_dataset(records // 4, args.seed)
    out_dir = scratch_dir("identity-out-")
    try:
        baseline = run_baseline(data)
        from rayflow.runtime.flowfile import load_flow

        ray_init(num_cpus=2)
        loaded = load_flow(FLOW)
        run_flow(small, 2, loaded, out_dir)  # warm-up: worker processes start, imports load
        quarter = run_flow(small, 2, loaded, out_dir)
        ones, twos = [], []
        for _ in range(reps):  # interleaved, so a burst of outside load hits both alike
            ones.append(run_flow(data, 1, loaded, out_dir))
            twos.append(run_flow(data, 2, loaded, out_dir))
        one, two = (min(runs, key=lambda r: r["wall"]) for runs in (ones, twos))
        cli = None if args.quick else run_cli(data, out_dir)
    finally:
        for path in (data, small, out_dir):
            shutil.rmtree(path, ignore_errors=True)
    report(records, baseline, quarter, one, two, cli, reps)


def report(records, baseline, quarter, one, two, cli, reps) -> None:
    headers = ["run", "wall s", "records/s", "pairs/s", "F1", "peak worker RSS",
               "vs 1 worker", "vs baseline"]
    rows = [row("baseline: one process, one core, no Ray", baseline, None, baseline),
            row("flow, 1 worker (in-process Runner)", one, None, baseline),
            row("flow, 2 workers (in-process Runner)", two, one, baseline)]
    if cli:
        rows.append(row("flow, 2 workers: cold `rayflow run` subprocess", cli, one, baseline))
    rows.append(row(f"flow, 2 workers, N/4 = {records // 4:,} records", quarter, None, None))
    speedup = one["wall"] / two["wall"]
    worst = max(two["wall"], cli["wall"] if cli else 0)
    growth = two["rss"] / max(quarter["rss"], 1)
    targets = [
        (f"- {records:,} records in <= {TARGET_WALL_S:.0f} s on 2 cores: "
         f"{met(worst <= TARGET_WALL_S)} (slowest 2-worker run {worst:.1f} s)"),
        f"- F1 >= {TARGET_F1}: {met(two['f1'] >= TARGET_F1)} ({two['f1']:.4f})",
        (f"- 2 workers >= {TARGET_SPEEDUP}x faster than 1: {met(speedup >= TARGET_SPEEDUP)} "
         f"({speedup:.2f}x)"),
        (f"- memory bounded by partition size, not N: peak worker RSS {growth:.2f}x when N "
         f"grows 4x ({mib(quarter['rss'])} -> {mib(two['rss'])}); the gather step holds "
         f"every partition, so this grows with N"),
    ]
    notes = (f"Dataset: `generate.py --records {records:,}` (seed fixed), Parquet shards of "
             f"50,000 records on local disk; the flow at its defaults (16 partitions, "
             f"threshold {algorithm.DEFAULT_THRESHOLD}, max_block "
             f"{algorithm.DEFAULT_MAX_BLOCK}); local datastore. Baseline = "
             f"`algorithm.single_process_baseline` in this process. Workers = Runner "
             f"`max_in_flight` on a Ray with 2 CPUs, warmed by one N/4 run first; the "
             f"1- and 2-worker rows are the fastest of {reps} interleaved runs each (the "
             f"machine is shared, so the slower runs measure other people's load).\n\n")
    table = markdown_table(headers, rows)
    print(table)
    print("\n".join(targets))
    write_section("identity_resolution", "identity_resolution: the flagship job at 1M records",
                  notes + table + "\n\nTargets:\n\n" + "\n".join(targets))


if __name__ == "__main__":
    sys.exit(main())
