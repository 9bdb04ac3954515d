"""The media batch, whole pipelines three ways from the same encoded clips: the media example
flow (examples/media/flow.py: decode foreach clip as CPU tasks, infer on an @actor_pool, a
table of cuts), the same pipeline in Ray Data as a Ray user writes it, and a plain torch loop;
then a spiky run of a pooled flow: how its pool grows, gives way and ends (issues 14, 29).

    .venv/bin/python benchmarks/media.py [--clips 16] [--actors 2] [--gpu 0] [--repeat 3]

The clips are made once, before anything is timed (examples/media/clips.py), and every
contender starts from the same encoded files, decodes them with PyAV, embeds every frame
with the same network (examples/media/model.py, fixed seed), finds the cuts of each clip and
writes them. Each one's time runs from its first call to its last write and includes its own
worker and model start-up:
- torch loop: build the model, then decode + embed + cuts clip after clip, in this process;
- Ray Data: `from_items(paths)`, `map_batches(decode, num_cpus=C)` (CPU tasks),
  `map_batches(Infer, compute=ActorPoolStrategy(min_size=1, max_size=A), num_cpus=C,
  num_gpus=G)` (an actor pool),
  `write_parquet`;
- rayflow: the media example flow, `RunLoop(...).run()` (its start, decode, infer on a pool
  of up to A actors, join, end with its card), checkpoints and run report included.
Both Ray contenders run on one Ray started before the first round (its start-up is left out
of both). Rounds alternate the contenders; the table gives medians of `--repeat` rounds.
The spiky run has two bursts on one pool with a pause between them; its summary is computed
from the pool's log (actors requested, up, down and why). Target: rayflow >= 1.2x Ray
Data's frames/s (reported, not asserted). On a GPU machine pass --gpu 1 (and --actors 1).
"""

from __future__ import annotations

import argparse
import json
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

MEDIA_FLOW = os.path.join(ROOT, "examples", "media", "flow.py")
BATCH = 32  # frames per model call, for every contender

# The spiky run's flow: two bursts of pooled batches on one pool, a pause between them.
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


def cuts_of(net, device, frames: list[np.ndarray]) -> tuple[int, list[int]]:
    """(frames, cuts) of one clip's frame batches: what every contender computes."""
    emb = np.concatenate([media_model.embed(net, device, b) for b in frames])
    return int(len(emb)), media_model.detect_cuts(media_model.boundary_scores(emb))


def torch_loop(paths: list[str], out: str) -> tuple[int, float]:
    """One process: the model, then each clip decoded, embedded, cut; the table written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    net, device = media_model.build(seed=0)
    rows = {"clip": [], "frames": [], "cuts": []}
    for p in paths:
        n, cuts = cuts_of(net, device, media_clips.decode(p, BATCH))
        rows["clip"].append(os.path.basename(p))
        rows["frames"].append(n)
        rows["cuts"].append(cuts)
    pq.write_table(pa.table(rows), os.path.join(out, "cuts.parquet"))
    return sum(rows["frames"]), time.perf_counter() - t0


def _decode(batch: dict) -> dict:
    frames = [np.concatenate(media_clips.decode(str(p), BATCH)) for p in batch["path"]]
    return {"clip": np.array([os.path.basename(str(p)) for p in batch["path"]]),
            "frames": np.stack(frames)}


class _Infer:
    def __init__(self):
        self.net, self.device = media_model.build(seed=0)

    def __call__(self, batch: dict):
        import pyarrow as pa

        out = {"clip": [], "frames": [], "cuts": []}
        for clip, frames in zip(batch["clip"], batch["frames"]):
            n, cuts = cuts_of(self.net, self.device,
                              [frames[i:i + BATCH] for i in range(0, len(frames), BATCH)])
            out["clip"].append(str(clip))
            out["frames"].append(n)
            out["cuts"].append(cuts)
        return pa.table(out)


def ray_data(paths: list[str], out: str, actors: int, cpu: float, gpu: float
             ) -> tuple[int, float]:
    """Read, decode on CPU tasks, infer on an actor pool, write: as a Ray user writes it."""
    import pyarrow.parquet as pq
    import ray

    t0 = time.perf_counter()
    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(_decode, batch_size=1, num_cpus=cpu)
    ds = ds.map_batches(_Infer, batch_size=1, num_cpus=cpu,
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                        num_gpus=gpu or None)
    ds.write_parquet(out)
    took = time.perf_counter() - t0
    n = int(pq.read_table(out).column("frames").to_numpy().sum())
    return n, took


def flow_run(clips_dir: str, n_clips: int, seconds: float, seed: int, actors: int,
             cpu: float, gpu: float, ds: str) -> tuple[int, float]:
    """The media example flow on the clips already made (make_clips finds and reuses them)."""
    from rayflow.client import Run, namespace
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    loaded = load_flow(MEDIA_FLOW)
    values = resolve_parameters(
        loaded.cls, {"clips": str(n_clips), "seconds": str(seconds), "seed": str(seed),
                     "folder": clips_dir, "batch": str(BATCH)},
        config_values={"settings": json.dumps({"gpu": gpu, "actors": actors, "cpu": cpu})})
    t0 = time.perf_counter()
    s = RunLoop(loaded, values, RunOptions(datastore_url=ds, progress=False)).run()
    took = time.perf_counter() - t0
    if not s.successful:
        raise SystemExit(f"{s.pathspec} failed: {s.failures[:1]}")
    namespace(None)
    return int(Run(s.pathspec, datastore=ds).data.metrics["frames"]), took


def spiky_run(batches, actors, cpu, gpu, pause, idle, folder):
    """The two-burst flow; returns its pool log's events and the task times of each burst."""
    import pickle

    from rayflow.client import Run, namespace
    from rayflow.datastore import FlowDataStore
    from rayflow.parameters import resolve_parameters
    from rayflow.report.pools import load_pool_log
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    path = os.path.join(folder, "media_spiky_flow.py")
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(SPIKY.format(cpu=cpu, gpu=gpu, actors=actors, idle=idle)))
    data = os.path.join(folder, "batches.pkl")
    with open(data, "wb") as fh:
        pickle.dump(batches, fh)
    ds = os.path.join(folder, "ds")
    loaded = load_flow(path)
    values = resolve_parameters(loaded.cls, {"path": data, "pause": str(pause)})
    s = RunLoop(loaded, values, RunOptions(datastore_url=ds, progress=False)).run()
    if not s.successful:
        raise SystemExit(f"{s.pathspec} failed: {s.failures[:1]}")
    namespace(None)
    run = Run(s.pathspec, datastore=ds)
    bursts = []
    for step in ("infer", "again"):
        tasks = list(run[step])
        bursts.append((min(t.created_at for t in tasks).timestamp(),
                       max(t.finished_at for t in tasks).timestamp()))
    log_ = load_pool_log(FlowDataStore.from_url(ds, s.flow), s.run_id)
    return log_["events"], bursts


def spiky_summary(events, bursts, actors: int, pause: float, idle: float) -> str:
    """What the pool did in the spiky run, in words, from its log alone."""
    t0 = min(e[0] for e in events)
    up, peak, parts = 0, 0, []
    first_req = {}
    for t, _, index, what, detail in sorted(events):
        first_req.setdefault(what, t)
        if what == "up":
            up += 1
            peak = max(peak, up)
        elif what in ("down", "died") and any(e[2] == index and e[3] == "up" and e[0] <= t
                                              for e in events):
            up -= 1
            if up == 0:
                near = min(range(len(bursts)), key=lambda i: abs(t - bursts[i][1]))
                parts.append(f"to 0 at {t - t0:.1f} s, {t - bursts[near][1]:+.1f} s from the "
                             f"end of burst {near + 1} ({detail})")
    ups = [e[0] for e in events if e[3] == "up"]
    reqs = [e[0] for e in events if e[3] == "requested"]
    to_first = min(ups) - min(reqs) if ups and reqs else None
    line = (f"Spiky run (two bursts on one pool of up to {actors} actors, a {pause:g} s pause "
            f"between them, idle_timeout {idle:g} s), from the pool's log: "
            f"{len(reqs)} actors requested, {len(ups)} up, peak {peak} up at once; first "
            f"actor up {to_first:.1f} s after it was requested; " if to_first is not None else
            "Spiky run: no actor came up; ")
    why: dict[str, int] = {}
    for e in events:
        if e[3] in ("down", "died"):
            key = "died" if e[3] == "died" else e[4]
            why[key] = why.get(key, 0) + 1
    ended = ", ".join(f"{n} {k}" for k, n in sorted(why.items(), key=lambda x: -x[1]))
    return line + (f"actors ended: {ended or 'none'}; " + (
        "the pool went " + "; ".join(parts) + "." if parts else
        "the pool never went back to 0."))


def _round(a, paths, clips_dir, rnd: int, results: dict, busy: dict) -> None:
    """One round: the three contenders in turn, their order rotating with the round."""
    order = [("torch", "data", "flow"), ("data", "flow", "torch"),
             ("flow", "torch", "data")][rnd % 3]
    for name in order:
        out = scratch_dir(f"media-{name}-")
        with GpuBusy() as g:
            if name == "torch":
                n, took = torch_loop(paths, out)
            elif name == "data":
                n, took = ray_data(paths, os.path.join(out, "cuts"), a.actors, a.cpu, a.gpu)
            else:
                n, took = flow_run(clips_dir, a.clips, a.seconds, a.seed, a.actors, a.cpu,
                                   a.gpu, os.path.join(out, "ds"))
        results[name].append((n, took))
        if g.busy is not None:
            busy.setdefault(name, []).append(g.busy)
        log(f"round {rnd + 1}: {name} {n:,} frames in {took:.1f} s = {n / took:,.0f} frames/s")


def _table(a, results: dict, busy: dict) -> tuple[str, dict]:
    fps = {k: [n / t for n, t in v] for k, v in results.items()}
    med = {k: statistics.median(v) for k, v in fps.items()}
    secs = {k: statistics.median(t for _, t in v) for k, v in results.items()}

    def gpu(name):
        return f"{statistics.median(busy[name]):.0%}" if busy.get(name) else "n/a"

    def spread(k):
        return f"{min(fps[k]):,.0f}-{max(fps[k]):,.0f}"

    rows = [
        ["torch loop, one process (model build included)", f"{med['torch']:,.0f}",
         spread("torch"), f"{secs['torch']:.1f}", f"{med['torch'] / med['data']:.2f}x",
         gpu("torch")],
        [f"Ray Data: map_batches decode (CPU tasks) + Infer on ActorPoolStrategy(1, "
         f"{a.actors}), write_parquet", f"{med['data']:,.0f}", spread("data"),
         f"{secs['data']:.1f}", "1.00x", gpu("data")],
        [f"rayflow: examples/media/flow.py, @actor_pool(max={a.actors}), whole run",
         f"{med['flow']:,.0f}", spread("flow"), f"{secs['flow']:.1f}",
         f"{med['flow'] / med['data']:.2f}x", gpu("flow")]]
    table = markdown_table(["pipeline (from the same encoded clips)", "frames/s (median)",
                            "min-max", "seconds (median)", "vs Ray Data",
                            "GPU busy (share of 100 ms samples > 0)"], rows)
    return table, med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--cpu", type=float, default=1.0)
    ap.add_argument("--gpu", type=float, default=0.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle", type=float, default=5.0)
    a = ap.parse_args()
    clips_dir = os.path.join(scratch_dir("media-bench-"), "clips")
    made = media_clips.make_clips(clips_dir, a.clips, a.seconds, a.seed)
    paths = [os.path.abspath(m["path"]) for m in made]
    log(f"{a.clips} clips made in {clips_dir}")
    kw = {"num_gpus": 1} if a.gpu else {}
    # Every worker (Ray Data's and the flow's) imports examples.media from this checkout.
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
    ray_init(runtime_env={"env_vars": {"PYTHONPATH": path}}, **kw)
    results: dict[str, list] = {"torch": [], "data": [], "flow": []}
    busy: dict[str, list[float]] = {}
    for r in range(a.repeat):
        _round(a, paths, clips_dir, r, results, busy)
    table, med = _table(a, results, busy)
    ratio = med["flow"] / med["data"]
    verdict = (f"\n\nTarget: rayflow's whole run >= 1.2x Ray Data's frames/s: {ratio:.2f}x, "
               f"{met(ratio >= 1.2)}.")
    if a.gpu:
        verdict += (f" GPU busy >= 90% during the flow: "
                    f"{met(bool(busy.get('flow')) and statistics.median(busy['flow']) >= 0.9)}"
                    " (sampled over the whole run, start and end included).")
    batches = [b for p in paths[: max(2 * a.actors, 4)] for b in media_clips.decode(p, BATCH)]
    pause = a.idle + 3.0
    events, bursts = spiky_run(batches, a.actors, a.cpu, a.gpu, pause, a.idle,
                               scratch_dir("media-spiky-"))
    spiky = "\n\n" + spiky_summary(events, bursts, a.actors, pause, a.idle)
    print(table + verdict + spiky)
    frames = results["flow"][0][0]
    notes = (f"{a.clips} synthetic clips of {a.seconds:g} s ({frames:,} frames of "
             f"{media_clips.WIDTH}x{media_clips.HEIGHT}), encoded once before timing; "
             f"{a.actors} actors of {a.cpu:g} CPU and {a.gpu:g} GPU each; device "
             f"{'cuda' if a.gpu else 'cpu'}; torch {__import__('torch').__version__}. "
             f"Medians of {a.repeat} rounds, the contenders' order rotating each round; "
             "each time includes the contender's own workers and model start-up.\n\n")
    device = "cuda" if a.gpu else "cpu"
    write_section(f"media_{device}", f"Media batch on the {device.upper()}, whole runs "
                  "(issue 29)", notes + table + verdict + spiky)


if __name__ == "__main__":
    main()
