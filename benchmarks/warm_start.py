"""A second `rayflow run examples/hello.py`, in a fresh shell with no extra command, against
Metaflow's `python hello.py run` on the same machine, in the same rounds (issue 30).

    .venv/bin/python benchmarks/warm_start.py [--repeat 3]

The first `rayflow run` on a machine with no Ray of the user's starts the warm local Ray and
leaves it for the runs after it; its time is reported once. Then each round runs, one after
another: `rayflow run` again (it joins that Ray), Metaflow 2.19.39 on the same flow (its import
line changed, in a venv of its own: benchmarks/.venv-metaflow, made on first use, or
$MF_PYTHON), a raw Ray script that joins the same warm Ray and runs one task, and
`rayflow run --no-warm` (an embedded Ray started and stopped by the run). Each cell is the
wall time of the whole subprocess, Python start-up included; medians of the rounds. The warm
Ray lives in a private RAYFLOW_HOME and is ended with `rayflow down` at the end.
Target: the second rayflow run takes at most Metaflow's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from _common import log, markdown_table, met, private_ray_env, scratch_dir, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELLO = os.path.join(ROOT, "examples", "hello.py")
METAFLOW_VERSION = "2.19.39"
# A plain Ray script that joins the warm Ray as any Ray program would (its address, and its
# token from the state file, which only this user can read) and runs one task.
RAW_WARM_SCRIPT = """
import json, os, sys
state = json.load(open(os.path.join(sys.argv[1], "local-ray.json")))
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=state["token"],
                  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
import logging
import ray

ray.init(address=state["address"], logging_level=logging.ERROR)


@ray.remote
def hello():
    return "Hello, world!"


assert ray.get(hello.remote()) == "Hello, world!"
"""


def timed(cmd: list[str], env: dict, cwd: str, what: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def metaflow_python() -> str | None:
    """A Python with metaflow==2.19.39: $MF_PYTHON, the conformance suite's venv, or
    benchmarks/.venv-metaflow (made on first use, never the project's own venv)."""
    candidates = [os.environ.get("MF_PYTHON"),
                  os.path.join(os.environ.get("TMPDIR", "/tmp"), "mfcore-metaflow-venv",
                               "bin", "python")]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import metaflow; print(metaflow.__version__)"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == METAFLOW_VERSION:
            return python
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from foreach_scale import metaflow_python as make_venv

    python, why = make_venv()
    if python is None:
        log(f"no Metaflow to compare with: {why}")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAYFLOW_NO_WARM_RAY",
                         "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "VIRTUAL_ENV", "PYTHONPATH")}
    base.setdefault("USER", "benchmark")
    work = scratch_dir("warm-start-")
    home = os.path.join(work, "home")
    env = {**base, "RAYFLOW_HOME": home}
    mf_python = metaflow_python()
    mf_flow = os.path.join(work, "hello.py")
    with open(HELLO) as src, open(mf_flow, "w") as dst:
        dst.write(src.read().replace("from rayflow import", "from metaflow import"))
    mf_env = {**base, "METAFLOW_HOME": work, "USERNAME": "benchmark",
              "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
              "METAFLOW_DATASTORE_SYSROOT_LOCAL": work}
    run = [sys.executable, "-m", "rayflow_cli.main", "run", HELLO, "--datastore",
           os.path.join(work, "ds"), "--quiet"]
    walls: dict[str, list[float]] = {"warm": [], "metaflow": [], "raw": [], "no-warm": []}
    try:
        first = timed(run, env, work, "the first rayflow run")
        log(f"first rayflow run (starts the warm Ray): {first:.2f} s")
        for r in range(args.repeat):
            walls["warm"].append(timed(run, env, work, "rayflow run"))
            if mf_python:
                walls["metaflow"].append(timed([mf_python, mf_flow, "run"], mf_env, work,
                                               "Metaflow's run"))
            walls["raw"].append(timed([sys.executable, "-c", RAW_WARM_SCRIPT, home], env,
                                      work, "the raw Ray script"))
            cold_env, folder = private_ray_env(env)
            walls["no-warm"].append(timed([*run, "--no-warm"], cold_env, work,
                                          "rayflow run --no-warm"))
            shutil.rmtree(folder, ignore_errors=True)
            log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s"
                                                for k, v in walls.items() if v))
        keeper = json.load(open(os.path.join(home, "local-ray.json")))["pid"]
    finally:
        subprocess.run([sys.executable, "-m", "rayflow_cli.main", "down"], env=env, cwd=work,
                       capture_output=True, check=False)
    report(walls, first, keeper, args.repeat)
    shutil.rmtree(work, ignore_errors=True)


def report(walls: dict, first: float, keeper: int, repeat: int) -> None:
    med = {k: statistics.median(v) for k, v in walls.items() if v}
    mf = med.get("metaflow")
    target = (f"{med['warm'] / mf:.2f}x Metaflow: {met(med['warm'] <= mf)} (<= 1x)"
              if mf else "n/a (no Metaflow)")

    def row(key: str, label: str, note: str) -> list:
        v = walls[key]
        return [label, f"{med[key]:.2f}", f"{min(v):.2f}-{max(v):.2f}", note]

    rows = [row("warm", "second `rayflow run examples/hello.py` (joins the warm Ray)", target)]
    if mf:
        rows.append(row("metaflow", f"Metaflow {METAFLOW_VERSION}: `python hello.py run`",
                        "baseline"))
    rows += [row("raw", "raw Ray script joining the same warm Ray, one task", "floor"),
             row("no-warm", "`rayflow run --no-warm` (embedded Ray)", "")]
    table = markdown_table(["run", "wall s (median)", "min-max", "target"], rows)
    print(table)
    notes = (f"Whole subprocesses, Python start-up included, alternated in {repeat} rounds, "
             f"local datastore; each rayflow run is a fresh process with no `rayflow up` "
             f"before it. The first `rayflow run` (which started the warm Ray, keeper pid "
             f"{keeper}) took {first:.1f} s, once; `rayflow down` ended it after the "
             f"rounds.\n\n")
    write_section("warm_start", "warm_start: the second run against Metaflow's (issue 30)",
                  notes + table)


if __name__ == "__main__":
    main()
