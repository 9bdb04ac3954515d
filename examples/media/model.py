"""The media example's model: a small convolutional network (weights from a fixed seed,
nothing downloaded) that turns each frame into an embedding, and shot-boundary scores from
how far consecutive embeddings move.

A cut changes the whole picture at once, so the embedding jumps; within a scene shapes move
a little and it drifts. A frame is a cut when its score stands far above the clip's typical
frame-to-frame change (median + `k` median absolute deviations, and at least `floor`).
"""

from __future__ import annotations

import numpy as np

EMBED = 64


def build(seed: int = 0, device: str | None = None):
    """The network, in eval mode, on `device` (CUDA when there is one, else CPU)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d((3, 4)), nn.Flatten(), nn.Linear(64 * 12, EMBED))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return net.eval().to(device), device


def embed(net, device: str, frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 frames -> (N, EMBED) float32 unit vectors."""
    import warnings

    import torch

    with torch.inference_mode(), warnings.catch_warnings():
        # Frames from the object store are read-only; nothing writes to them here.
        warnings.simplefilter("ignore", UserWarning)
        x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - 0.5) / 0.25
        e = net(x)
        e = torch.nn.functional.normalize(e, dim=1)
        return e.cpu().numpy().astype(np.float32)


def boundary_scores(emb: np.ndarray) -> np.ndarray:
    """Score of each frame: 1 - cosine(previous frame, this frame); frame 0 scores 0."""
    if len(emb) == 0:
        return np.zeros(0, np.float32)
    sims = (emb[1:] * emb[:-1]).sum(axis=1)
    return np.concatenate([[0.0], 1.0 - sims]).astype(np.float32)


def detect_cuts(scores: np.ndarray, k: float = 8.0, floor: float = 0.02) -> list[int]:
    if len(scores) < 3:
        return []
    body = scores[1:]
    med = float(np.median(body))
    mad = float(np.median(np.abs(body - med))) or 1e-6
    thr = max(floor, med + k * mad)
    return [int(i) for i in np.flatnonzero(scores > thr) if i > 0]


def match_cuts(found: list[int], truth: list[int], tolerance: int = 1) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), a found cut matching a true one
    within `tolerance` frames, each true cut matched at most once."""
    left = sorted(truth)
    tp = 0
    for f in sorted(found):
        hit = next((t for t in left if abs(t - f) <= tolerance), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp, len(found) - tp, len(left)
