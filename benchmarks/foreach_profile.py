"""Where a foreach split's time goes: cProfile of the driver (Ray executor) and of the worker's
side of the same splits (the inline executor runs a batch through the same worker code in this
process), grouped into the phases of a split.

    .venv/bin/python benchmarks/foreach_profile.py [--n 100000] [--top 25]

The flow is foreach_scale's. Each phase is the cumulative time of the functions that make it
(a function counted in one phase is not counted again in a phase around it); the per-split
figure is the phase's time divided by N. cProfile slows Python code about 1.5-2x: read the
shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import sys
import time

from _common import log, markdown_table, ray_init, scratch_dir, write_section
from foreach_scale import write_flow

# phase -> (file suffix, function name) whose cumulative time is the phase's.
DRIVER_PHASES = [
    ("spec (TaskSpec per split, BatchMaker)", "batching.py", "make"),
    ("spec as an index range (BatchMaker.make_range)", "batching.py", "make_range"),
    ("split objects (Fanout.take)", "scheduler.py", "take"),
    ("slicing (driver side)", "run_loop.py", "_prepare_fanout"),
    ("scheduling: submit (Ray task + pickling the specs)", "ray_executor.py", "submit"),
    ("scheduling: wait + fetch outcomes", "ray_executor.py", "wait"),
    ("results: per-split hand-on / join table", "run_loop.py", "_on_result"),
    ("  of which: batch summaries into the join", "run_loop.py", "_on_splits_joined"),
    ("report rows", "rows.py", "final"),
    ("report written", "run_loop.py", "_write_report"),
]
WORKER_PHASES = [
    ("isolation (before/after each task)", "isolation.py", "before_task"),
    ("isolation (after)", "isolation.py", "after_task"),
    ("user step + hooks", "worker_task.py", "_run_with_hooks"),
    ("capture (stdout/stderr)", "capture.py", "captured_output"),
    ("capture artifacts (encode + hash)", "worker_task.py", "_capture_artifacts"),
    ("hashing / encoding", "artifact_store.py", "encode"),
    ("task context / flow instance", "worker_task.py", "_task_context"),
    ("record (TaskRecord + bundle write)", "worker.py", "persist"),
    ("summary + join segment", "fanout.py", "summarize"),
    ("join: segments brought together", "joins.py", "_materialize"),
    ("whole task (run_task)", "worker_task.py", "run_task"),
    ("whole batch (stream_batch)", "worker.py", "stream_batch"),
]


def cumulative(stats: pstats.Stats, suffix: str, func: str) -> float:
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if name == func and filename.endswith(suffix):
            total += ct
    return total


def profiled_run(loaded, n: int, executor: str) -> tuple[float, pstats.Stats]:
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    ds = scratch_dir(f"profile-{executor}-{n}-")
    runner = RunLoop(loaded, {"n": n}, RunOptions(datastore_url=ds, progress=False,
                                                  executor=executor))
    gc.collect()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    summary = runner.run()
    prof.disable()
    wall = time.perf_counter() - t0
    shutil.rmtree(ds, ignore_errors=True)
    if not summary.successful:
        raise SystemExit(f"run failed: {summary.failures[:1]}")
    return wall, pstats.Stats(prof)


def table(stats, phases, n: int, wall: float) -> list[list[str]]:
    rows = []
    for label, suffix, func in phases:
        s = cumulative(stats, suffix, func)
        rows.append([label, f"{s:.2f}", f"{s / n * 1e6:.1f}", f"{100 * s / wall:.0f}%"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=0, help="also print the top functions")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from rayflow.runtime.flowfile import load_flow

    folder = scratch_dir("profile-flows-")
    loaded = load_flow(write_flow(folder, "rayflow_scale_flow.py", "rayflow"))
    ray = ray_init()
    from rayflow.runtime.run_loop import RunLoop, RunOptions  # noqa: F401 - warm imports

    log("warm-up N=2,000")
    profiled_run(loaded, 2000, "ray")
    n = args.n
    log(f"driver profile, Ray executor, N={n:,}")
    load0 = os.getloadavg()
    dwall, dstats = profiled_run(loaded, n, "ray")
    log(f"  {dwall:.1f} s")
    ray.shutdown()
    wn = min(n, 100_000)
    log(f"worker-side profile, inline executor, N={wn:,}")
    wwall, wstats = profiled_run(loaded, wn, "inline")
    log(f"  {wwall:.1f} s")
    load1 = os.getloadavg()
    if args.top:
        for st in (dstats, wstats):
            st.sort_stats("tottime").print_stats(args.top)
    headers = ["phase", "seconds", "us / split", "share of wall"]
    drows = table(dstats, DRIVER_PHASES, n, dwall)
    wrows = table(wstats, WORKER_PHASES, wn, wwall)
    body = (f"Load average at start {load0[0]:.1f} / {load0[1]:.1f}; at the end "
            f"{load1[0]:.1f} / {load1[1]:.1f}.\n\n"
            f"Driver (Ray executor, N={n:,}, wall under cProfile {dwall:.1f} s):\n\n"
            + markdown_table(headers, drows) +
            f"\n\nWorker side (the inline executor runs the same worker code in-process, "
            f"N={wn:,}, wall under cProfile {wwall:.1f} s; the driver's own phases are "
            f"included in that wall):\n\n" + markdown_table(headers, wrows))
    print(body)
    if not args.no_write:
        write_section(f"foreach_profile_{n}", f"foreach_profile: where a split's time goes, "
                      f"N={n:,} (issue 32)", body)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
