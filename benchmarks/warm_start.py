"""What `rayflow up` saves: `rayflow run examples/hello.py` cold (an embedded Ray started and
stopped by the run) against warm (joining the local Ray that `rayflow up` keeps), alternated in
one run (issue 13, item 4).

    .venv/bin/python benchmarks/warm_start.py [--repeat 3]

Each cell is the wall time of the whole `rayflow run` subprocess, Python start-up included.
Cold runs get a private RAY_TMPDIR and RAYFLOW_NO_WARM_RAY=1; warm runs a private
RAYFLOW_HOME where `rayflow up` was run first (its own start-up is reported apart). The raw
Ray script has hello.py's shape without rayflow: start a local Ray, run three trivial tasks
one after another, shut Ray down; it runs in the same rounds, with its own private
RAY_TMPDIR. Targets (not asserted): warm at most 2 s; cold at most 1.1x the raw Ray script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from _common import log, markdown_table, met, private_ray_env, scratch_dir, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELLO = os.path.join(ROOT, "examples", "hello.py")
TARGET_WARM_S = 2.0
TARGET_COLD_RATIO = 1.1
RAW_SCRIPT = """
import ray

ray.init(address="local", include_dashboard=False)


@ray.remote
def step(x):
    return x + 1


x = 0
for _ in range(3):
    x = ray.get(step.remote(x))
assert x == 3
ray.shutdown()
"""


def raw_ray(env) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RAW_SCRIPT], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"the raw Ray script failed:\n{proc.stderr[-2000:]}")
    return wall


def rayflow(*args, env) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"rayflow {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAYFLOW_NO_WARM_RAY")}
    ds = scratch_dir("warm-start-ds-")
    home = scratch_dir("warm-start-home-")
    warm_env = {**base, "RAYFLOW_HOME": home}
    up_s = rayflow("up", "--idle-timeout", "600", env=warm_env)
    walls: dict[str, list[float]] = {"cold": [], "warm": [], "raw": []}
    try:
        for r in range(args.repeat):
            cold_env, folder = private_ray_env({**base, "RAYFLOW_NO_WARM_RAY": "1"})
            walls["cold"].append(rayflow("run", HELLO, "--datastore", ds, "--quiet",
                                         env=cold_env))
            shutil.rmtree(folder, ignore_errors=True)
            walls["warm"].append(rayflow("run", HELLO, "--datastore", ds, "--quiet",
                                         env=warm_env))
            raw_env, folder = private_ray_env(dict(base))
            walls["raw"].append(raw_ray(raw_env))
            shutil.rmtree(folder, ignore_errors=True)
            log(f"round {r + 1}: cold {walls['cold'][-1]:.2f} s, warm {walls['warm'][-1]:.2f} s, "
                f"raw Ray script {walls['raw'][-1]:.2f} s")
    finally:
        rayflow("down", env=warm_env)
    med = {mode: statistics.median(v) for mode, v in walls.items()}
    cold_ratio = med["cold"] / med["raw"]
    rows = []
    for mode, label, target in (
            ("cold", "cold: embedded Ray started by the run",
             f"{cold_ratio:.2f}x raw: {met(cold_ratio <= TARGET_COLD_RATIO)} (<= 1.1x)"),
            ("warm", "warm: joins the Ray of `rayflow up`",
             f"{met(med['warm'] <= TARGET_WARM_S)} (<= 2 s)"),
            ("raw", "raw Ray script: ray.init + 3 tasks in a row + shutdown", "baseline")):
        rows.append([label, f"{med[mode]:.2f}",
                     f"{min(walls[mode]):.2f}-{max(walls[mode]):.2f}", target])
    table = markdown_table(["`rayflow run examples/hello.py`", "wall s (median)", "min-max",
                            "target"], rows)
    print(table)
    notes = (f"Whole `rayflow run` subprocesses, Python start-up included, cold, warm and the "
             f"raw Ray script alternated, {args.repeat} rounds, local datastore. "
             f"`rayflow up` itself took "
             f"{up_s:.1f} s, once.\n\n")
    write_section("warm_start", "warm_start: `rayflow up` against a cold start (issue 13)",
                  notes + table)
    shutil.rmtree(ds, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
