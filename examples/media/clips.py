"""Synthetic clips with known scene cuts, encoded with PyAV: the media example's input.

Each clip is a run of scenes. A scene has its own background colour, and a few shapes
(squares and discs, each its own colour) that move across it; a cut starts the next scene.
The frame numbers where scenes start are the truth the flow is scored against.

    python -m examples.media.clips --out out/clips --clips 8 --seconds 4
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

WIDTH, HEIGHT, FPS = 160, 96, 24


def _bounce(v: float, size: int) -> float:
    """A coordinate moving freely, folded back into [0, size): shapes bounce off the edges
    rather than jump across (a jump would look like a cut)."""
    v = v % (2 * size)
    return v if v < size else 2 * size - v


def _scene_frames(rng: np.random.Generator, n: int) -> np.ndarray:
    """n frames (n, H, W, 3) uint8 of one scene: moving shapes on a plain background."""
    bg = rng.integers(0, 256, 3)
    shapes = []
    for _ in range(int(rng.integers(2, 5))):
        shapes.append({
            "colour": rng.integers(0, 256, 3), "size": int(rng.integers(10, 28)),
            "pos": rng.uniform([0, 0], [WIDTH, HEIGHT]), "vel": rng.uniform(-3, 3, 2),
            "disc": bool(rng.integers(0, 2))})
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for f in range(n):
        frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        frame[:] = bg
        for s in shapes:
            x, y = _bounce(s["pos"][0] + s["vel"][0] * f, WIDTH), \
                _bounce(s["pos"][1] + s["vel"][1] * f, HEIGHT)
            r = s["size"] / 2
            if s["disc"]:
                mask = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
            else:
                mask = (abs(xx - x) <= r) & (abs(yy - y) <= r)
            frame[mask] = s["colour"]
        out[f] = frame
    return out


def make_clip(path: str, seed: int, seconds: float = 4.0) -> list[int]:
    """Write one clip to `path` (MPEG-4 in .mp4); returns the frames where scenes start
    (after the first)."""
    import av

    rng = np.random.default_rng(seed)
    total = int(seconds * FPS)
    cuts, f = [], 0
    while True:
        f += int(rng.integers(FPS // 2, 2 * FPS))
        if f >= total - FPS // 4:
            break
        cuts.append(f)
    bounds = [0, *cuts, total]
    container = av.open(path, mode="w")
    stream = container.add_stream("mpeg4", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.bit_rate = 800_000
    for a, b in zip(bounds[:-1], bounds[1:]):
        for frame in _scene_frames(rng, b - a):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return cuts


def make_clips(out: str, clips: int, seconds: float, seed: int = 0) -> list[dict]:
    """`clips` clips in `out`, and `out/cuts.json` with each one's true cuts. Clips that `out`
    already holds from the same clips, seconds and seed are used again, not made again."""
    os.makedirs(out, exist_ok=True)
    key = {"clips": clips, "seconds": seconds, "seed": seed}
    cuts_file = os.path.join(out, "cuts.json")
    try:
        with open(cuts_file) as fh:
            have = json.load(fh)
        if have.get("made_with") == key and all(os.path.exists(m["path"])
                                                for m in have["clips"]):
            return have["clips"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass
    made = []
    for i in range(clips):
        path = os.path.join(out, f"clip-{i:04d}.mp4")
        made.append({"path": path, "cuts": make_clip(path, seed * 100_003 + i, seconds)})
    with open(cuts_file, "w") as fh:
        json.dump({"made_with": key, "clips": made}, fh, indent=1)
    return made


def decode(path: str, batch: int = 32) -> list[np.ndarray]:
    """The clip's frames as RGB uint8 arrays, in batches of `batch` frames (N, H, W, 3)."""
    import av

    out, buf = [], []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            buf.append(frame.to_ndarray(format="rgb24"))
            if len(buf) == batch:
                out.append(np.stack(buf))
                buf = []
    if buf:
        out.append(np.stack(buf))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="out/clips")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    made = make_clips(a.out, a.clips, a.seconds, a.seed)
    print(f"{len(made)} clips in {a.out}, {sum(len(m['cuts']) for m in made)} cuts")
