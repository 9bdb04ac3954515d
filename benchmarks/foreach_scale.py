"""What a foreach split costs in rayflow, against raw Ray and Metaflow's local runtime.

    .venv/bin/python benchmarks/foreach_scale.py [--quick | --million]

The flow is `start -> foreach over range(N) -> work (self.out = self.input + 1) -> join (sum of
the inputs' out) -> end`; `end` checks the sum, so a successful run did all the work.

- rayflow: the in-process Runner on a Ray this script started (and warmed with a small run),
  local datastore on disk, progress off. Wall time of `Runner.run()`, splits/s, the driver's
  peak RSS (sampled every 20 ms) and its growth over the run, and a check afterwards that N
  `work` tasks are durably DONE in the datastore.
- raw Ray on the same Ray: N tiny `@ray.remote` tasks, unbatched (submitted in windows, collected
  with ray.wait), and batched (100 tasks of N/100 items). Nothing is checkpointed.
- Metaflow 2.19.39's local runtime (own venv, benchmarks/.venv-metaflow) on the same flow for
  N = 10 and 100, `--max-workers 4 --max-num-splits 100000`, as a subprocess.

Targets are reported as met or not met, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import textwrap
import time

from _common import (
    BENCH_DIR,
    Heartbeat,
    RssSampler,
    log,
    markdown_table,
    met,
    mib,
    ray_init,
    scratch_dir,
    write_section,
)

METAFLOW_VERSION = "2.19.39"
METAFLOW_VENV = os.path.join(BENCH_DIR, ".venv-metaflow")
METAFLOW_NS = (10, 100)
RAW_WINDOW = 10_000        # unbatched raw Ray: most tasks in flight at once
RAW_BATCHES = 100          # batched raw Ray: N is cut into this many tasks
TARGET_WALL_100K_S = 60.0
TARGET_METAFLOW_RATIO = 400.0
TARGET_RSS_BYTES = 2**30

FLOW_BODY = '''
class ScaleFlow(FlowSpec):
    n = Parameter("n", default=1000, type=int)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.out = self.input + 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(inp.out for inp in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == self.n * (self.n + 1) // 2, (self.total, self.n)


if __name__ == "__main__":
    ScaleFlow()
'''


def write_flow(folder: str, name: str, package: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write(f"from {package} import FlowSpec, Parameter, step\n\n" +
                 textwrap.dedent(FLOW_BODY))
    return path


# -- rayflow ----------------------------------------------------------------------------------
def rayflow_run(loaded, n: int) -> dict:
    """One in-process run of N splits; its wall, RSS and DONE count."""
    from rayflow.datastore import FlowDataStore
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    ds = scratch_dir(f"scale-rayflow-{n}-")
    runner = RunLoop(loaded, {"n": n}, RunOptions(datastore_url=ds, progress=False))
    gc.collect()
    log(f"rayflow N={n:,}: running")
    with RssSampler() as rss, Heartbeat(f"rayflow N={n:,}", lambda: (
            f"{runner.done_count:,} tasks done, driver RSS {mib(rss.proc.memory_info().rss)}")):
        t0 = time.perf_counter()
        summary = runner.run()
        wall = time.perf_counter() - t0
    if not summary.successful:
        raise SystemExit(f"rayflow run {summary.pathspec} failed: {summary.failures[:1]}")
    t0 = time.perf_counter()
    done = len(FlowDataStore.from_url(ds, loaded.name).done_task_ids(summary.run_id, "work"))
    check_s = time.perf_counter() - t0
    kernel = mib(rss.kernel_peak) if rss.kernel_peak else "n/a"
    log(f"rayflow N={n:,}: {wall:.2f} s, {n / wall:,.0f} splits/s, peak RSS {mib(rss.peak)} "
        f"(+{mib(rss.growth)}; sampled {mib(rss.sampled_peak)}, kernel VmHWM {kernel}), "
        f"{done:,} DONE work tasks (counted in {check_s:.1f} s)")
    shutil.rmtree(ds, ignore_errors=True)
    return {"wall": wall, "peak": rss.peak, "growth": rss.growth, "done": done}


# -- raw Ray ----------------------------------------------------------------------------------
def _add_one(x):
    return x + 1


def _add_one_batch(xs):
    return [x + 1 for x in xs]


def raw_ray_unbatched(ray, n: int) -> dict:
    task = ray.remote(_add_one)
    gc.collect()
    total, submitted, pending = 0, 0, []
    log(f"raw Ray unbatched N={n:,}: running")
    with RssSampler() as rss, Heartbeat(f"raw Ray unbatched N={n:,}",
                                        lambda: f"{submitted - len(pending):,} done"):
        t0 = time.perf_counter()
        while submitted < n or pending:
            while submitted < n and len(pending) < RAW_WINDOW:
                pending.append(task.remote(submitted))
                submitted += 1
            ready, pending = ray.wait(pending, num_returns=min(len(pending), RAW_WINDOW // 10))
            total += sum(ray.get(ready))
        wall = time.perf_counter() - t0
    assert total == n * (n + 1) // 2, (total, n)
    log(f"raw Ray unbatched N={n:,}: {wall:.2f} s, {n / wall:,.0f} tasks/s")
    return {"wall": wall, "peak": rss.peak, "growth": rss.growth}


def raw_ray_batched(ray, n: int) -> dict:
    task = ray.remote(_add_one_batch)
    size = max(1, -(-n // RAW_BATCHES))
    gc.collect()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        refs = [task.remote(list(range(i, min(i + size, n)))) for i in range(0, n, size)]
        total = sum(sum(part) for part in ray.get(refs))
        wall = time.perf_counter() - t0
    assert total == n * (n + 1) // 2, (total, n)
    log(f"raw Ray batched N={n:,} ({len(refs)} tasks of {size:,}): {wall:.2f} s")
    return {"wall": wall, "peak": rss.peak, "growth": rss.growth, "tasks": len(refs)}


# -- Metaflow ---------------------------------------------------------------------------------
def metaflow_python() -> tuple[str | None, str]:
    """The Python of a venv with metaflow==2.19.39 (made on first use), or (None, why not)."""
    python = os.path.join(METAFLOW_VENV, "bin", "python")
    probe = [python, "-c", "import metaflow; print(metaflow.__version__)"]
    if os.path.exists(python):
        out = subprocess.run(probe, capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip() == METAFLOW_VERSION:
            return python, ""
    log(f"installing metaflow=={METAFLOW_VERSION} into {METAFLOW_VENV}")
    for cmd in ([sys.base_prefix + "/bin/python3", "-m", "venv", METAFLOW_VENV],
                [python, "-m", "pip", "install", "-q", f"metaflow=={METAFLOW_VERSION}"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            why = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["?"]
            return None, f"`{' '.join(cmd[-3:])}` failed: {why[0]}"
    return python, ""


def metaflow_run(python: str, flow_file: str, n: int) -> dict:
    home = scratch_dir(f"scale-metaflow-{n}-")
    env = {**os.environ, "METAFLOW_HOME": home, "USERNAME": "benchmark",
           "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DEFAULT_METADATA": "local",
           "METAFLOW_DATASTORE_SYSROOT_LOCAL": home}
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "RAY_ADDRESS"):
        env.pop(var, None)
    cmd = [python, flow_file, "--no-pylint", "run", "--n", str(n), "--max-workers", "4",
           "--max-num-splits", "100000"]
    log(f"Metaflow N={n}: running")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"Metaflow N={n} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    done = _metaflow_done_tasks(home)
    log(f"Metaflow N={n}: {wall:.2f} s, {done} work tasks")
    shutil.rmtree(home, ignore_errors=True)
    return {"wall": wall, "done": done}


def _metaflow_done_tasks(home: str) -> int:
    """Tasks of `work` that Metaflow's local datastore marked done (`0.DONE.lock`)."""
    root = os.path.join(home, ".metaflow", "ScaleFlow")
    count = 0
    for run in os.listdir(root):
        step_dir = os.path.join(root, run, "work")
        if not os.path.isdir(step_dir):
            continue
        for task in os.listdir(step_dir):
            if os.path.exists(os.path.join(step_dir, task, "0.DONE.lock")):
                count += 1
    return count


# -- the report -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="N = 1,000 and 10,000 only")
    group.add_argument("--million", action="store_true", help="add N = 1,000,000")
    group.add_argument("--data-path", action="store_true",
                       help="issue 13's targets: rayflow at N = 100,000 and 1,000,000 beside "
                            "raw Ray batched (raw unbatched at 1M takes ~15 minutes)")
    group.add_argument("--vs-raw", type=int, nargs="+", metavar="N",
                       help="issue 32: whole `rayflow run` processes against raw batched Ray "
                            "on one running Ray, at these N (e.g. 100000 1000000)")
    group.add_argument("--memory", type=int, nargs="+", metavar="N",
                       help="issue 32: the driver's peak RSS of one whole `rayflow run` at "
                            "each N on a warm Ray (e.g. 1000000 3000000 10000000)")
    parser.add_argument("--reps", type=int, default=3, help="with --vs-raw: runs of each")
    parser.add_argument("--skip-metaflow", action="store_true")
    args = parser.parse_args()
    if args.vs_raw:
        vs_raw(args.vs_raw, args.reps)
        return
    if args.memory:
        memory(args.memory)
        return
    if args.data_path:
        data_path()
        return
    ns = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.million:
        ns.append(1_000_000)

    folder = scratch_dir("scale-flows-")
    rows, results = [], {}

    mf = {}
    mf_python, mf_why = (None, "skipped (--skip-metaflow)") if args.skip_metaflow \
        else metaflow_python()
    if mf_python:
        mf_flow = write_flow(folder, "metaflow_scale_flow.py", "metaflow")
        for n in METAFLOW_NS:
            mf[n] = metaflow_run(mf_python, mf_flow, n)

    from rayflow.runtime.flowfile import load_flow

    t0 = time.perf_counter()
    ray = ray_init()
    log(f"ray.init: {time.perf_counter() - t0:.1f} s")
    loaded = load_flow(write_flow(folder, "rayflow_scale_flow.py", "rayflow"))
    log("warm-up: rayflow N=200 (starts Ray's workers and imports)")
    rayflow_run(loaded, 200)
    raw_ray_unbatched(ray, 2_000)

    for n in ns:
        rf = rayflow_run(loaded, n)
        raw = raw_ray_unbatched(ray, n)
        batched = raw_ray_batched(ray, n)
        results[n] = (rf, raw)
        rows.append(["rayflow", f"{n:,}", f"{rf['wall']:.2f}", f"{n / rf['wall']:,.0f}",
                     mib(rf["peak"]), mib(rf["growth"]), f"{rf['done']:,} DONE",
                     f"{raw['wall'] / rf['wall']:.2f}x"])
        rows.append(["raw Ray, unbatched", f"{n:,}", f"{raw['wall']:.2f}",
                     f"{n / raw['wall']:,.0f}", mib(raw["peak"]), mib(raw["growth"]),
                     "none", "1.00x"])
        rows.append([f"raw Ray, batched ({batched['tasks']} tasks)", f"{n:,}",
                     f"{batched['wall']:.2f}", f"{n / batched['wall']:,.0f}",
                     mib(batched["peak"]), mib(batched["growth"]), "none",
                     f"{raw['wall'] / batched['wall']:.2f}x"])
    for n in METAFLOW_NS:
        if n in mf:
            rows.append([f"Metaflow {METAFLOW_VERSION} local, --max-workers 4", f"{n:,}",
                         f"{mf[n]['wall']:.2f}", f"{n / mf[n]['wall']:,.1f}", "-", "-",
                         f"{mf[n]['done']:,} done", "-"])
        else:
            rows.append([f"Metaflow {METAFLOW_VERSION}", f"{n:,}", mf_why, "", "", "", "", ""])
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)

    headers = ["system", "N splits", "wall s", "splits/s", "driver peak RSS", "RSS growth",
               "durable records", "rate vs raw Ray unbatched"]
    table = markdown_table(headers, rows)
    targets = target_lines(ns, results, mf)
    print(table)
    print("\n".join(targets))
    notes = ("Flow: `start -> foreach over range(N) -> work (self.out = self.input + 1) -> "
             "join (sum) -> end` (end checks the sum). rayflow: in-process Runner on a Ray "
             "started once and warmed with an N=200 run; local datastore on disk; wall = "
             "`Runner.run()`; driver peak RSS = the larger of a 20 ms sampling thread and the "
             "kernel's VmHWM (reset before the run); growth = peak minus RSS before the run. "
             "Raw Ray: same Ray, unbatched = one task per item, "
             f"at most {RAW_WINDOW:,} in flight, collected with ray.wait; batched = "
             f"{RAW_BATCHES} tasks of N/{RAW_BATCHES} items; nothing checkpointed. Metaflow: "
             "`python flow.py run --n N --max-workers 4 --max-num-splits 100000` as a "
             "subprocess (wall includes its Python start-up), local datastore and metadata.\n\n")
    write_section("foreach_scale", "foreach_scale: cost of a foreach split (issue 4)",
                  notes + table + "\n\nTargets:\n\n" + "\n".join(targets))


TARGET_WARM_100K_S = 8.0
TARGET_1M_S = 90.0


def data_path() -> None:
    """rayflow at 100,000 and 1,000,000 splits on a warm Ray, beside raw Ray batched."""
    from rayflow.runtime.flowfile import load_flow

    folder = scratch_dir("scale-flows-")
    ray = ray_init()
    loaded = load_flow(write_flow(folder, "rayflow_scale_flow.py", "rayflow"))
    log("warm-up: rayflow N=200, then N=10,000 (workers started, imports done)")
    rayflow_run(loaded, 200)
    rayflow_run(loaded, 10_000)
    rows, got = [], {}
    for n in (100_000, 1_000_000):
        rf = got[n] = rayflow_run(loaded, n)
        batched = raw_ray_batched(ray, n)
        rows.append(["rayflow (warm Ray, in-process Runner)", f"{n:,}", f"{rf['wall']:.2f}",
                     f"{n / rf['wall']:,.0f}", mib(rf["peak"]), mib(rf["growth"]),
                     f"{rf['done']:,} DONE"])
        rows.append([f"raw Ray, batched ({batched['tasks']} tasks, nothing recorded)", f"{n:,}",
                     f"{batched['wall']:.2f}", f"{n / batched['wall']:,.0f}",
                     mib(batched["peak"]), mib(batched["growth"]), "none"])
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)
    table = markdown_table(["system", "N splits", "wall s", "splits/s", "driver peak RSS",
                            "RSS growth", "durable records"], rows)
    w100, w1m, p1m = got[100_000]["wall"], got[1_000_000]["wall"], got[1_000_000]["peak"]
    targets = [
        f"- 100,000 splits in <= {TARGET_WARM_100K_S:.0f} s on a warm Ray: "
        f"{met(w100 <= TARGET_WARM_100K_S)} ({w100:.1f} s)",
        f"- 1,000,000 splits with a durable record each in <= {TARGET_1M_S:.0f} s: "
        f"{met(w1m <= TARGET_1M_S)} ({w1m:.1f} s)",
        f"- driver memory at 1,000,000 <= 1 GB: {met(p1m <= TARGET_RSS_BYTES)} "
        f"(peak {mib(p1m)})",
    ]
    print(table)
    print("\n".join(targets))
    notes = ("Flow as in foreach_scale. One Ray started by the script (2 CPUs) and warmed by "
             "runs of 200 and 10,000 splits; in-process Runner; local datastore on disk; RSS "
             "measured as in foreach_scale.\n\n")
    write_section("foreach_data_path", "foreach_data_path: 100,000 and 1,000,000 splits on a "
                  "warm Ray (issue 13)", notes + table + "\n\nTargets:\n\n" +
                  "\n".join(targets))


# -- issue 32: whole processes on one running Ray, rayflow against raw batched Ray ----------
RAW_ITEMS_PER_TASK = 1_000
TARGET_RATIO = {100_000: 2.5, 1_000_000: 3.0}

RAW_BATCHED_SCRIPT = '''
import sys, ray

def main(n, address):
    ray.init(address=address, log_to_driver=False)

    @ray.remote
    def add_one(xs):
        return [x + 1 for x in xs]

    items = list(range(n))
    refs = [add_one.remote(items[i:i + {per}]) for i in range(0, n, {per})]
    total = 0
    while refs:  # collected as they finish, so finished results are not all held at once
        ready, refs = ray.wait(refs, num_returns=min(len(refs), 64))
        total += sum(sum(part) for part in ray.get(ready))
    assert total == n * (n + 1) // 2, (total, n)

main(int(sys.argv[1]), sys.argv[2])
'''


def _child_run(cmd: list[str], env: dict, label: str) -> dict:
    """Run `cmd` to its end; its wall time and peak RSS (sampled every 20 ms)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    child, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, child.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"{label} exited {proc.returncode}:\n{out[-3000:]}")
    log(f"{label}: {wall:.2f} s, peak RSS {mib(peak)}")
    return {"wall": wall, "peak": peak}


def vs_raw(ns: list[int], reps: int) -> None:
    """`rayflow run` and a raw batched Ray script, each a whole process joining the same
    running Ray (the warm Ray of `rayflow up`, which `rayflow run` joins as it is, with no
    upload), alternated, `reps` times each; medians."""
    import statistics

    from rayflow.datastore import FlowDataStore

    folder = scratch_dir("vs-raw-")
    flow = write_flow(folder, "rayflow_scale_flow.py", "rayflow")
    raw = os.path.join(folder, "raw_batched.py")
    with open(raw, "w") as fh:
        fh.write(RAW_BATCHED_SCRIPT.format(per=RAW_ITEMS_PER_TASK))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAYFLOW_NO_WARM_RAY")}
    env["RAYFLOW_HOME"] = scratch_dir("vs-raw-home-")
    rayflow_bin = os.path.join(os.path.dirname(sys.executable), "rayflow")
    up = subprocess.run([rayflow_bin, "up", "--idle-timeout", "3600"], env=env,
                        capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise SystemExit(f"rayflow up failed:\n{up.stderr[-2000:]}")
    os.environ["RAYFLOW_HOME"] = env["RAYFLOW_HOME"]
    from rayflow.runtime import warm

    local = warm.current()
    address = local.address
    # As rayflow joins it: its token, and Ray's single-machine mode (it serves 127.0.0.1).
    raw_env = {**env, **local.join_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    try:
        rows, figures = _vs_raw_rounds(ns, reps, flow, raw, address, env, raw_env, rayflow_bin,
                                       FlowDataStore)
    finally:
        subprocess.run([rayflow_bin, "down"], env=env, capture_output=True, check=False)
    _vs_raw_report(ns, reps, rows, figures, statistics)
    shutil.rmtree(folder, ignore_errors=True)


def _vs_raw_rounds(ns, reps, flow, raw, address, env, raw_env, rayflow_bin, FlowDataStore):
    import statistics

    def rayflow_cmd(n, ds):
        return [rayflow_bin, "run", flow, "--n", str(n), "--datastore", ds, "--quiet"]

    log("warm-up: one small run of each (not counted)")
    ds = scratch_dir("vs-raw-ds-")
    _child_run(rayflow_cmd(1000, ds), env, "rayflow warm-up")
    _child_run([sys.executable, raw, "1000", address], raw_env, "raw warm-up")
    rows, figures = [], {}
    for n in ns:
        got = {"rayflow": [], "raw": []}
        for rep in range(reps):
            ds = scratch_dir("vs-raw-ds-")
            got["rayflow"].append(_child_run(rayflow_cmd(n, ds), env,
                                             f"rayflow run N={n:,} #{rep + 1}"))
            fds = FlowDataStore.from_url(ds, "ScaleFlow")
            (run_id,) = fds.list_run_ids()
            done = len(fds.done_task_ids(run_id, "work"))
            if done != n:
                raise SystemExit(f"rayflow N={n:,}: {done:,} DONE work tasks, not {n:,}")
            shutil.rmtree(ds, ignore_errors=True)
            got["raw"].append(_child_run([sys.executable, raw, str(n), address], raw_env,
                                         f"raw batched N={n:,} #{rep + 1}"))
        med = {k: statistics.median(r["wall"] for r in v) for k, v in got.items()}
        peak = {k: max(r["peak"] for r in v) for k, v in got.items()}
        figures[n] = (med, peak, got)
        ratio = med["rayflow"] / med["raw"]
        walls = {k: ", ".join(f"{r['wall']:.1f}" for r in v) for k, v in got.items()}
        rows.append(["`rayflow run` (durable record per split)", f"{n:,}",
                     f"{med['rayflow']:.2f}", walls["rayflow"], f"{n / med['rayflow']:,.0f}",
                     mib(peak["rayflow"]), f"{ratio:.2f}x"])
        rows.append([f"raw Ray, batched ({RAW_ITEMS_PER_TASK:,} items a task, nothing "
                     "recorded)", f"{n:,}", f"{med['raw']:.2f}", walls["raw"],
                     f"{n / med['raw']:,.0f}", mib(peak["raw"]), "1.00x"])
    return rows, figures


def _warm_ray(env: dict, rayflow_bin: str) -> None:
    up = subprocess.run([rayflow_bin, "up", "--idle-timeout", "3600"], env=env,
                        capture_output=True, text=True, check=False)
    if up.returncode != 0:
        raise SystemExit(f"rayflow up failed:\n{up.stderr[-2000:]}")


def _rss_run(cmd: list[str], env: dict, label: str) -> dict:
    """Run `cmd` to its end: its wall time, its peak RSS (sampled every 20 ms) and its RSS
    every 15 s (logged, for the slope)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    child, peak, trace, last = psutil.Process(proc.pid), 0, [], 0.0
    while proc.poll() is None:
        try:
            rss = child.memory_info().rss
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        now = time.perf_counter() - t0
        if now - last >= 15:
            trace.append((round(now), rss))
            last = now
            log(f"{label}: {now:.0f} s, RSS {mib(rss)}, peak {mib(peak)}")
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label} exited {proc.returncode}")
    log(f"{label}: {wall:.1f} s, peak RSS {mib(peak)}")
    return {"wall": wall, "peak": peak, "trace": trace}


def memory(ns: list[int]) -> None:
    """The driver's peak RSS of one whole `rayflow run` at each N, on the warm Ray of
    `rayflow up` (the flow of foreach_scale); each run checked for N DONE `work` tasks."""
    from rayflow.datastore import FlowDataStore

    folder = scratch_dir("memory-")
    flow = write_flow(folder, "rayflow_scale_flow.py", "rayflow")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "RAYFLOW_NO_WARM_RAY")}
    env["RAYFLOW_HOME"] = scratch_dir("memory-home-")
    rayflow_bin = os.path.join(os.path.dirname(sys.executable), "rayflow")
    _warm_ray(env, rayflow_bin)
    rows = []
    try:
        for n in [1000, *ns]:
            ds = scratch_dir("memory-ds-")
            got = _rss_run([rayflow_bin, "run", flow, "--n", str(n), "--datastore", ds,
                            "--quiet"], env, f"rayflow run N={n:,}")
            fds = FlowDataStore.from_url(ds, "ScaleFlow")
            (run_id,) = fds.list_run_ids()
            done = len(fds.done_task_ids(run_id, "work"))
            shutil.rmtree(ds, ignore_errors=True)
            if done != n:
                raise SystemExit(f"rayflow N={n:,}: {done:,} DONE work tasks, not {n:,}")
            rows.append([f"{n:,}", f"{got['wall']:.1f}", f"{n / got['wall']:,.0f}",
                         mib(got["peak"]), f"{done:,} DONE", "warm-up" if n == 1000 else ""])
            log(f"N={n:,} RSS trace (s, MiB): "
                f"{[(t, round(r / 2**20)) for t, r in got['trace']]}")
    finally:
        subprocess.run([rayflow_bin, "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    table = markdown_table(["N splits", "wall s", "splits/s", "driver peak RSS",
                            "durable records", ""], rows)
    print(table)
    notes = ("One warm Ray (2 CPUs) started by `rayflow up` (private RAYFLOW_HOME); each row "
             "one whole process `rayflow run flow.py --n N --datastore <fresh folder> --quiet` "
             "(the flow of foreach_scale: every split a real task with its durable record; "
             "the join sums N inputs; each run checked for N DONE `work` tasks). Peak RSS: "
             "the driver process's, sampled every 20 ms.\n\n")
    write_section("foreach_memory", "foreach_memory: the driver's peak RSS as the foreach "
                  "widens (issue 32)", notes + table)


def _vs_raw_report(ns, reps, rows, figures, statistics) -> None:
    table = markdown_table(["system (whole process)", "N splits", "median wall s",
                            "walls s", "splits/s", "peak RSS", "vs raw batched"], rows)
    targets = []
    for n, (med, peak, _) in figures.items():
        ratio, want = med["rayflow"] / med["raw"], TARGET_RATIO.get(n)
        if want:
            targets.append(f"- {n:,} splits within {want}x of raw batched Ray: "
                           f"{met(ratio <= want)} ({ratio:.2f}x)")
        targets.append(f"- driver peak RSS at {n:,}: {mib(peak['rayflow'])} (under 1 GiB: "
                       f"{met(peak['rayflow'] < TARGET_RSS_BYTES)})")
    print(table)
    print("\n".join(targets))
    notes = (f"One warm Ray ({os.cpu_count()} CPUs) started by `rayflow up` (private "
             "RAYFLOW_HOME); each row a whole process that joins it: `rayflow run flow.py "
             "--n N --datastore <fresh folder> --quiet` (the flow of foreach_scale; every run "
             "checked "
             "for N DONE `work` tasks), and a raw Ray script written as a careful Ray user "
             f"would: {RAW_ITEMS_PER_TASK:,} items a task, results collected with ray.wait, "
             f"sum checked, nothing recorded. Alternated, {reps} of each, medians; one "
             "uncounted warm-up of each first. Peak RSS: the process's, sampled every 20 ms "
             "(the driver's, for rayflow).\n\n")
    at = ", ".join(f"{n:,}" for n in ns)
    write_section("foreach_vs_raw_" + "_".join(str(n) for n in ns),
                  f"foreach_vs_raw: whole processes on one running Ray, against raw batched "
                  f"Ray, N = {at} (issue 32)", notes + table + "\n\nTargets:\n\n"
                  + "\n".join(targets))


def target_lines(ns: list[int], results: dict, mf: dict) -> list[str]:
    top = max(ns)
    rf, raw = results[top]
    lines = []
    if 100_000 in results:
        wall = results[100_000][0]["wall"]
        lines.append(f"- 100,000 trivial splits in <= {TARGET_WALL_100K_S:.0f} s: "
                     f"{met(wall <= TARGET_WALL_100K_S)} ({wall:.1f} s)")
    else:
        lines.append("- 100,000 trivial splits in <= 60 s: not measured (--quick)")
    lines.append(f"- rate >= raw Ray unbatched at N={top:,}: {met(rf['wall'] <= raw['wall'])} "
                 f"(rayflow {top / rf['wall']:,.0f} vs raw Ray {top / raw['wall']:,.0f} "
                 "splits/s)")
    if mf:
        mf_n = max(mf)
        mf_per = mf[mf_n]["wall"] / mf_n
        rf_per = rf["wall"] / top
        ratio = mf_per / rf_per
        lines.append(f"- per-split overhead >= {TARGET_METAFLOW_RATIO:.0f}x smaller than "
                     f"Metaflow's: {met(ratio >= TARGET_METAFLOW_RATIO)} ({ratio:,.0f}x: "
                     f"Metaflow {mf_per * 1e3:,.1f} ms/split at N={mf_n}, rayflow "
                     f"{rf_per * 1e3:.3f} ms/split at N={top:,})")
        lo, hi = min(mf), max(mf)
        if lo != hi:
            marginal = (mf[hi]["wall"] - mf[lo]["wall"]) / (hi - lo)
            lines.append(f"  - for reference, Metaflow's marginal cost per extra split "
                         f"(N={lo} to {hi}, fixed start-up removed): {marginal * 1e3:,.1f} ms, "
                         f"{marginal / rf_per:,.0f}x rayflow's wall/N")
    else:
        lines.append("- per-split overhead vs Metaflow: not measured (no Metaflow)")
    at = 100_000 if 100_000 in results else top
    peak = results[at][0]["peak"]
    others = ", ".join(f"{mib(r[0]['peak'])} at N={n:,}" for n, r in results.items() if n != at)
    lines.append(f"- driver RSS <= 1 GB at N={at:,}: {met(peak <= TARGET_RSS_BYTES)} (peak "
                 f"{mib(peak)}; {others})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
