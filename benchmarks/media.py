"""The media batch three ways on the same decoded frames: the flow (an @actor_pool step), Ray
Data (`map_batches` with an `ActorPoolStrategy`), and a plain torch loop in one process; then
a spiky run of the flow: how fast the pool grows and when it is back at min (issue 14).

    .venv/bin/python benchmarks/media.py [--clips 24] [--actors 2] [--gpu 0] [--repeat 3]

Clips are made and decoded once, before anything is timed (examples/media/clips.py); every
contender embeds the same frame batches with the same network (examples/media/model.py,
fixed seed). Frames/s:
- torch loop: `embed` over every batch, in this process (model built before timing);
- Ray Data: `ray.data.from_items` of the batches, `map_batches(Embed, batch_size=1,
  compute=ActorPoolStrategy(min_size=1, max_size=A), num_gpus=G, num_cpus=C)`, consumed
  whole; timed from the call to the last row;
- the flow: `start -> infer (foreach batch, @actor_pool(max=A), @resources(cpu=C, gpu=G))
  -> join -> end`, the batches handed in as the foreach's items; timed over the pooled step
  (first infer start to last infer end, from the task records), and whole (the run).
The spiky run has two bursts on one pool with an idle pause longer than the pool's
idle_timeout between them; the pool's size over time comes from the executor's history.
Targets (not asserted): flow >= 1.0x Ray Data; after a burst at max within 5 s, back at min
within the idle time-out. On a GPU machine pass --gpu 1 (and --actors 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import textwrap
import time

import numpy as np
from _common import log, markdown_table, met, ray_init, scratch_dir, write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from examples.media import clips as media_clips  # noqa: E402
from examples.media import model as media_model  # noqa: E402

FLOW = '''
import time
from rayflow import FlowSpec, Parameter, actor_pool, current, resources, step
from examples.media import model as media_model

CPU, GPU, ACTORS, IDLE = {cpu}, {gpu}, {actors}, {idle}


def load_model():
    net, device = media_model.build(seed=0)
    return {{"net": net, "device": device}}


def embed(flow):
    m = current.actor.state
    return len(media_model.embed(m["net"], m["device"], flow.input))


class MediaBench(FlowSpec):
    path = Parameter("path", default="")
    pause = Parameter("pause", default=0.0, type=float)

    @step
    def start(self):
        import pickle
        with open(self.path, "rb") as fh:
            self.batches = pickle.load(fh)
        self.next(self.infer, foreach="batches")

    @resources(cpu=CPU, gpu=GPU)
    @actor_pool(name="model", min=0, max=ACTORS, setup=load_model, idle_timeout=IDLE)
    @step
    def infer(self):
        self.n = embed(self)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.frames = sum(i.n for i in inputs)
        self.merge_artifacts(inputs, include=["batches"])
        self.next(self.end)

    @step
    def end(self):
        pass
'''

# Two bursts on one pool, an idle pause between them.
SPIKY = FLOW.replace('''        self.merge_artifacts(inputs, include=["batches"])
        self.next(self.end)''', '''        self.merge_artifacts(inputs, include=["batches"])
        self.next(self.rest)

    @step
    def rest(self):
        time.sleep(self.pause)
        self.next(self.again, foreach="batches")

    @resources(cpu=CPU, gpu=GPU)
    @actor_pool(name="model", min=0, max=ACTORS, setup=load_model, idle_timeout=IDLE)
    @step
    def again(self):
        self.n = embed(self)
        self.next(self.join2)

    @step
    def join2(self, inputs):
        self.next(self.end)''')


class GpuBusy:
    """The GPU's busy fraction while a block runs: `nvidia-smi` sampled every 100 ms (the
    share of samples with utilization above 0, and the mean utilization). Inactive, with
    `busy` None, where there is no nvidia-smi."""

    def __init__(self):
        import shutil

        self.cmd = shutil.which("nvidia-smi")
        self.samples: list[float] = []
        self._proc = None

    def __enter__(self):
        import subprocess

        if self.cmd:
            self._proc = subprocess.Popen(
                [self.cmd, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "100"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self._proc is None:
            return
        self._proc.terminate()  # the sampler this block started, by its handle
        out, _ = self._proc.communicate(timeout=10)
        for line in out.splitlines():
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                pass

    @property
    def busy(self) -> float | None:
        return (sum(1 for s in self.samples if s > 0) / len(self.samples)) if self.samples \
            else None

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def torch_loop(batches) -> float:
    net, device = media_model.build(seed=0)
    media_model.embed(net, device, batches[0][:2])  # warm up
    t0 = time.perf_counter()
    n = sum(len(media_model.embed(net, device, b)) for b in batches)
    return n / (time.perf_counter() - t0)


class _Embed:
    def __init__(self):
        self.net, self.device = media_model.build(seed=0)

    def __call__(self, batch):
        frames = batch["frames"]
        out = [media_model.embed(self.net, self.device, np.asarray(f)) for f in frames]
        return {"n": np.array([len(o) for o in out])}


def ray_data(batches, actors: int, cpu: float, gpu: float) -> float:
    import ray

    t0 = time.perf_counter()
    ds = ray.data.from_items([{"frames": b} for b in batches])
    out = ds.map_batches(_Embed, batch_size=1,
                         compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                         num_cpus=cpu, num_gpus=gpu or None)
    n = sum(int(r["n"]) for r in out.iter_rows())
    took = time.perf_counter() - t0
    assert n == sum(len(b) for b in batches), n
    return n / took


def flow_run(batches, actors, cpu, gpu, pause, idle, folder, template=FLOW):
    import pickle

    from rayflow.client import Run, namespace
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    path = os.path.join(folder, "media_bench_flow.py")
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(template.format(cpu=cpu, gpu=gpu, actors=actors, idle=idle)))
    data = os.path.join(folder, "batches.pkl")
    with open(data, "wb") as fh:
        pickle.dump(batches, fh)
    ds = os.path.join(folder, "ds")
    loaded = load_flow(path)
    values = resolve_parameters(loaded.cls, {"path": data, "pause": str(pause)})
    t0 = time.perf_counter()
    s = RunLoop(loaded, values, RunOptions(datastore_url=ds, progress=False)).run()
    whole = time.perf_counter() - t0
    if not s.successful:
        raise SystemExit(f"{s.pathspec} failed: {s.failures[:1]}")
    namespace(None)
    tasks = list(Run(s.pathspec, datastore=ds)["infer"])
    begin = min(t.created_at for t in tasks).timestamp()
    end = max(t.finished_at for t in tasks).timestamp()
    n = sum(t["n"].data for t in tasks)
    return n / (end - begin), n / whole, s.pool_history


def spikes(history, actors: int, idle: float) -> dict:
    """From (time, pool, size) events: seconds from the first actor to `actors` actors in
    each burst, and from the last busy moment to 0 actors."""
    ev = [(t, n) for t, pool, n in history if pool == "model"]
    ups, downs, start = [], [], None
    for i, (t, n) in enumerate(ev):
        prev = ev[i - 1][1] if i else 0
        if prev == 0 and n > 0:
            start = t
        if n == actors and start is not None and prev < n:
            ups.append(t - start)
            start = None
        if n == 0 and prev > 0:
            downs.append(t)
    return {"to_max_s": ups, "down_at": downs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--cpu", type=float, default=1.0)
    ap.add_argument("--gpu", type=float, default=0.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5.0)
    a = ap.parse_args()
    folder = scratch_dir("media-bench-")
    made = media_clips.make_clips(os.path.join(folder, "clips"), a.clips, a.seconds, seed=3)
    batches = [b for m in made for b in media_clips.decode(m["path"], 32)]
    frames = sum(len(b) for b in batches)
    log(f"{a.clips} clips, {frames:,} frames in {len(batches)} batches decoded")
    kw = {"num_gpus": 1} if a.gpu else {}
    # Every worker (Ray Data's and the flow's) imports examples.media from this checkout.
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    ray_init(runtime_env={"env_vars": {"PYTHONPATH": path}}, **kw)
    rows, results = [], {"torch": [], "data": [], "flow": [], "flow_whole": []}
    busy: dict[str, list[float]] = {}  # GPU busy fraction per contender, where there is a GPU
    for r in range(a.repeat):
        with GpuBusy() as g_torch:
            results["torch"].append(torch_loop(batches))
        with GpuBusy() as g_data:
            results["data"].append(ray_data(batches, a.actors, a.cpu, a.gpu))
        with GpuBusy() as g_flow:
            step_fps, whole_fps, _ = flow_run(batches, a.actors, a.cpu, a.gpu, 0.0, a.idle,
                                              scratch_dir("media-flow-"))
        for name, g in (("torch", g_torch), ("data", g_data), ("flow", g_flow)):
            if g.busy is not None:
                busy.setdefault(name, []).append(g.busy)
        results["flow"].append(step_fps)
        results["flow_whole"].append(whole_fps)
        log(f"round {r + 1}: torch {results['torch'][-1]:,.0f}, Ray Data "
            f"{results['data'][-1]:,.0f}, flow step {step_fps:,.0f} (whole run "
            f"{whole_fps:,.0f}) frames/s")
    med = {k: statistics.median(v) for k, v in results.items()}
    _, _, history = flow_run(batches[: max(4 * a.actors, 8)], a.actors, a.cpu, a.gpu,
                             a.idle + 3.0, a.idle, scratch_dir("media-spiky-"), SPIKY)
    sp = spikes(history, a.actors, a.idle)
    t_first = history[0][0] if history else 0.0
    timeline = ", ".join(f"{t - t_first:.1f} s: {n}" for t, p, n in history if p == "model")
    device = "cuda" if a.gpu else "cpu"
    def gpu(name):
        return f"{statistics.median(busy[name]):.0%}" if busy.get(name) else "n/a"

    rows.append(["torch loop, one process", f"{med['torch']:,.0f}", "1.00x", "-"])
    rows[0].append(gpu("torch"))
    rows.append([f"Ray Data map_batches, ActorPoolStrategy(1..{a.actors})",
                 f"{med['data']:,.0f}", f"{med['data'] / med['torch']:.2f}x", "-", gpu("data")])
    rows.append([f"rayflow @actor_pool(max={a.actors}), pooled step",
                 f"{med['flow']:,.0f}", f"{med['flow'] / med['torch']:.2f}x",
                 f"{med['flow'] / med['data']:.2f}x ({met(med['flow'] >= med['data'])})",
                 gpu("flow")])
    rows.append(["rayflow, whole run (Ray start excluded, checkpoints included)",
                 f"{med['flow_whole']:,.0f}", f"{med['flow_whole'] / med['torch']:.2f}x",
                 f"{med['flow_whole'] / med['data']:.2f}x", "(the same run)"])
    table = markdown_table(["pipeline", "frames/s (median)", "vs torch loop", "vs Ray Data",
                            "GPU busy (share of 100 ms samples > 0)"], rows)
    if a.gpu:
        table += (f"\n\nTargets on the GPU: pooled step >= 85% of the torch loop: "
                  f"{met(med['flow'] >= 0.85 * med['torch'])}; GPU busy >= 90% during the "
                  f"flow: {met(bool(busy.get('flow')) and statistics.median(busy['flow']) >= 0.9)}"
                  " (busy is sampled over the whole flow run, start and end included).")
    ups = ", ".join(f"{x:.1f} s" for x in sp["to_max_s"]) or "never reached max"
    spiky = (f"\n\nSpiky run (two bursts of {max(4 * a.actors, 8)} batches, {a.idle + 3:.0f} s "
             f"apart, idle_timeout {a.idle:g} s): pool size over time: {timeline}. First actor "
             f"to max ({a.actors}): {ups} ({met(bool(sp['to_max_s']) and max(sp['to_max_s']) <= 5)}"
             f" for <= 5 s). The pool went back to 0 {len(sp['down_at'])} time(s): once in the "
             "idle pause between the bursts (after the idle time-out) and once at the end of "
             "the run.")
    print(table + spiky)
    notes = (f"{a.clips} synthetic clips of {a.seconds:g} s ({frames:,} frames of "
             f"{media_clips.WIDTH}x{media_clips.HEIGHT}, {len(batches)} batches of up to 32), "
             f"decoded once; {a.actors} actors of {a.cpu:g} CPU and {a.gpu:g} GPU each; device "
             f"{device}; torch {__import__('torch').__version__}. Medians of {a.repeat} rounds, "
             "the three contenders alternated in each round.\n\n")
    write_section(f"media_{device}", f"Media batch on the {device.upper()} (issue 14)",
                  notes + table + spiky)


if __name__ == "__main__":
    main()
