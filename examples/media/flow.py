"""GPU media processing on rayflow: decode on CPU, a warm model on GPU actors, cuts per clip.

    rayflow run examples/media/flow.py --clips 16
    rayflow run examples/media/flow.py --clips 64 --config-value settings '{"gpu": 1, "actors": 1}'

    start -> decode (foreach clip, CPU tasks) -> infer (same clip, on an actor pool)
          -> join (a table of cuts per clip) -> end (accuracy against the known cuts, frames/s)

`decode` opens one clip with PyAV and hands its frames on as numpy batches. `infer` runs on a
pool of actors that load the network once each (`setup=load_model`), sized by
`settings.gpu` (a fraction of a GPU each; 0 on a machine without one), growing to
`settings.actors` under load and shrinking back when idle. The clips are synthetic, with
known scene cuts (clips.py), so the end step can say how well the cuts were found.
"""

import os
import time

import numpy as np
import pyarrow as pa

from rayflow import (
    Config,
    FlowSpec,
    Parameter,
    actor_pool,
    card,
    config_expr,
    current,
    resources,
    step,
)
from rayflow.cards import Markdown, Table, VegaChart

try:  # imported from the repository root (tests, benchmarks)
    from examples.media import clips as media_clips
    from examples.media import model as media_model
except ImportError:  # loaded by rayflow with this folder on sys.path
    import clips as media_clips
    import model as media_model


def load_model():
    """Once per actor: the network, on the GPU Ray gave this actor if any, else the CPU."""
    net, device = media_model.build(seed=0)
    return {"net": net, "device": device}


class MediaFlow(FlowSpec):
    """Find the scene cuts of synthetic clips with a small CNN on warm actors."""

    settings = Config("settings", default_value={"gpu": 0, "actors": 2, "cpu": 1})
    clips = Parameter("clips", default=8, help="how many synthetic clips to make")
    seconds = Parameter("seconds", default=4.0, help="length of each clip")
    seed = Parameter("seed", default=0, help="the clips' seed")
    folder = Parameter("folder", default="out/clips", help="where the clips are written")
    batch = Parameter("batch", default=32, help="frames per model call")

    @step
    def start(self):
        self.started = time.time()
        made = media_clips.make_clips(self.folder, self.clips, self.seconds, self.seed)
        self.videos = [{"path": os.path.abspath(m["path"]), "cuts": m["cuts"]} for m in made]
        self.next(self.decode, foreach="videos")

    @step
    def decode(self):
        """CPU: the clip's frames, as uint8 batches."""
        t0 = time.perf_counter()
        self.video = self.input
        self.frames = media_clips.decode(self.input["path"], self.batch)
        self.decode_seconds = time.perf_counter() - t0
        self.next(self.infer)

    @resources(cpu=config_expr("settings.cpu"), gpu=config_expr("settings.gpu"))
    @actor_pool(name="model", min=0, max=config_expr("settings.actors"), setup=load_model,
                idle_timeout=10)
    @step
    def infer(self):
        """On a warm actor: embeddings and shot-boundary scores, then the cuts."""
        t0 = time.perf_counter()
        model = current.actor.state
        emb = np.concatenate([media_model.embed(model["net"], model["device"], b)
                              for b in self.frames]) if self.frames else np.zeros((0, 1))
        self.scores = media_model.boundary_scores(emb)
        self.cuts = media_model.detect_cuts(self.scores)
        self.infer_seconds = time.perf_counter() - t0
        self.n_frames = int(sum(len(b) for b in self.frames))
        self.device = model["device"]
        del self.frames  # not needed downstream: the join reads scores, not pixels
        self.next(self.join)

    @step
    def join(self, inputs):
        """One row per detected cut, with its clip and score."""
        rows = {"clip": [], "frame": [], "score": []}
        self.per_clip = []
        for inp in inputs:
            name = os.path.basename(inp.video["path"])
            for f in inp.cuts:
                rows["clip"].append(name)
                rows["frame"].append(f)
                rows["score"].append(float(inp.scores[f]))
            self.per_clip.append({"clip": name, "frames": inp.n_frames, "found": inp.cuts,
                                  "truth": inp.video["cuts"],
                                  "decode_s": inp.decode_seconds,
                                  "infer_s": inp.infer_seconds, "device": inp.device})
        self.cut_table = pa.table({"clip": pa.array(rows["clip"], pa.string()),
                                   "frame": pa.array(rows["frame"], pa.int32()),
                                   "score": pa.array(rows["score"], pa.float32())})
        first = inputs[0]
        self.example = {"clip": os.path.basename(first.video["path"]),
                        "scores": [float(x) for x in first.scores],
                        "truth": first.video["cuts"]}
        self.merge_artifacts(inputs, include=["started"])
        self.next(self.end)

    @card(type="blank", id="media")
    @step
    def end(self):
        tp = fp = fn = 0
        for c in self.per_clip:
            a, b, d = media_model.match_cuts(c["found"], c["truth"])
            tp, fp, fn = tp + a, fp + b, fn + d
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        frames = sum(c["frames"] for c in self.per_clip)
        seconds = time.time() - self.started
        infer = sum(c["infer_s"] for c in self.per_clip)
        self.metrics = {
            "clips": len(self.per_clip), "frames": frames, "true_cuts": tp + fn,
            "found_cuts": tp + fp, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "seconds": seconds, "frames_per_second": frames / seconds if seconds else 0.0,
            "model_frames_per_second": frames / infer if infer else 0.0,
            "device": self.per_clip[0]["device"] if self.per_clip else "",
        }
        m = self.metrics
        print(f"{m['clips']} clips, {m['frames']:,} frames: cuts precision "
              f"{m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f}; "
              f"{m['frames_per_second']:,.0f} frames/s end to end, "
              f"{m['model_frames_per_second']:,.0f} frames/s in the model ({m['device']})")
        media = current.card["media"]
        media.append(Markdown(f"# Scene cuts\n{m['clips']} clips, {m['frames']:,} frames, "
                              f"F1 **{m['f1']:.3f}** against the known cuts."))
        media.append(Table([[k, f"{v:.3f}" if isinstance(v, float) else v]
                            for k, v in m.items()], headers=["metric", "value"]))
        ex = self.example
        values = [{"frame": i, "score": s} for i, s in enumerate(ex["scores"])]
        media.append(VegaChart({
            "title": f"Cut scores over the frames of {ex['clip']} (true cuts in red)",
            "width": 560, "height": 200,
            "layer": [
                {"data": {"values": values}, "mark": "line",
                 "encoding": {"x": {"field": "frame", "type": "quantitative"},
                              "y": {"field": "score", "type": "quantitative"}}},
                {"data": {"values": [{"frame": c} for c in ex["truth"]]},
                 "mark": {"type": "rule", "color": "#d64545"},
                 "encoding": {"x": {"field": "frame", "type": "quantitative"}}}]}))


if __name__ == "__main__":
    MediaFlow()
