"""The task timeline (a Gantt chart) as SVG: one lane per worker process (or per node when
there are too many workers to read), time across. Up to MAX_BOXES tasks are drawn one box
each; above that each lane is cut into time bins, each shaded by how busy the lane was and
coloured by the step that used it most, so a 100,000-task run stays a few hundred shapes."""

from __future__ import annotations

from ..cards.html import esc

# Step colours: blues, indigos, purples and mauves only (hues 190 to 320 degrees), none of
# them the greens, ambers, oranges and reds that mean done, running or failed in the graph and
# the status pills (report/graph.py's STATUS_COLOURS); a failed task is drawn in FAILED with a
# dark outline besides, so it reads as failed in any step.
PALETTE = ["#4c78a8", "#8e6bb8", "#2c8fb5", "#1d3f6e", "#c4a8dc", "#7fb4dd", "#5b4a9e",
           "#b07aa1", "#34495e", "#7b68ee", "#0f6e8c", "#a89bc8"]
FAILED = "#d64545"
FAILED_EDGE = "#5c0d0d"
MAX_BOXES = 3000
MAX_LANES = 48
BINS = 240
LANE_H, LABEL_W, PLOT_W = 18, 190, 900


def step_colours(steps: list[str]) -> dict[str, str]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(steps)}


def timeline_svg(tasks: list[tuple], steps: list[str], t0: float | None = None) -> str:
    """`tasks`: (step, task_id, started, finished, node, worker, ok) tuples."""
    tasks = [t for t in tasks if t[2] and t[3]]
    if not tasks:
        return '<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="400" height="30">' \
               '<text x="4" y="20" font-size="12">No task has finished yet.</text></svg>'
    lanes_by_worker = sorted({(t[4], t[5]) for t in tasks})
    by_node = len(lanes_by_worker) > MAX_LANES
    lane_key = (lambda t: (t[4], 0)) if by_node else (lambda t: (t[4], t[5]))
    lanes = sorted({lane_key(t) for t in tasks})
    start = min(t[2] for t in tasks)
    lead = start - t0 if t0 is not None and t0 < start else 0.0
    span = max(max(t[3] for t in tasks) - start, 1e-3)
    colours = step_colours(steps)
    height = len(lanes) * LANE_H + 40
    width = LABEL_W + PLOT_W + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="task timeline" data-tasks="{len(tasks)}" data-lanes="{len(lanes)}">']
    out.extend(_lane_rows(lanes, by_node))
    plot = _Plot(start, span, {k: i for i, k in enumerate(lanes)}, lane_key, colours)
    if len(tasks) <= MAX_BOXES:
        out.extend(_task_boxes(plot, tasks))
    else:
        workers_per_lane: dict = {}
        if by_node:
            for node, _worker in lanes_by_worker:
                workers_per_lane[(node, 0)] = workers_per_lane.get((node, 0), 0) + 1
        out.extend(_busy_bins(plot, tasks, lanes, workers_per_lane if by_node else None))
    axis_y = 8 + len(lanes) * LANE_H + 12
    for ts, label in time_ticks(span):
        out.append(f'<text class="tick" x="{LABEL_W + PLOT_W * ts / span:.1f}" y="{axis_y}" '
                   f'font-size="10" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    legend = "".join(f'<span><i style="background:{c}"></i>{esc(s)}</span>'
                     for s, c in colours.items())
    note = _note(len(tasks), len(lanes), by_node, lead)
    return "".join(out) + f'<div class="legend">{legend}<span><i style="background:{FAILED}">' \
                          f'</i>failed</span></div><div class="label">{esc(note)}</div>'


def time_ticks(span: float, most: int = 7) -> list[tuple[float, str]]:
    """Ticks from 0 to `span` seconds at a round step (1, 2 or 5 times a power of ten, or
    whole minutes), each labelled with as many digits as tell it from its neighbours: a
    0.4 s run reads 0, 0.1 s, ..., not 0.0 s five times."""
    import math

    span = max(span, 1e-3)
    raw = span / max(1, most - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    if raw > 30:  # whole minutes
        step = 60.0 * next((m for m in (1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 480, 720)
                            if 60 * m >= raw), math.ceil(raw / 3600) * 60)
    n = int(math.floor(span / step + 1e-9))
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    out = []
    for k in range(n + 1):
        ts = k * step
        if step < 0.1:
            label = f"{ts * 1000:.{max(0, digits - 3)}f} ms"
        elif step >= 60:
            label = f"{ts / 60:.0f} min" if span < 7200 else \
                f"{int(ts // 3600)}:{int(ts % 3600 // 60):02d} h"
        else:
            label = f"{ts:.{digits}f} s"
        out.append((ts, "0" if k == 0 else label))
    return out


class _Plot:
    """Where a task goes: its lane's row, and x for a time."""

    def __init__(self, start: float, span: float, index: dict, lane_key, colours: dict):
        self.start, self.span, self.index = start, span, index
        self.lane_key, self.colours = lane_key, colours

    def x(self, ts: float) -> float:
        return LABEL_W + (ts - self.start) / self.span * PLOT_W

    def lane(self, task: tuple) -> int:
        return self.index[self.lane_key(task)]


def _lane_rows(lanes: list, by_node: bool) -> list[str]:
    out = []
    for i, (node, worker) in enumerate(lanes):
        y = 8 + i * LANE_H
        label = node.split("@")[-1] if node else "?"
        label = f"{label} (node)" if by_node else f"{label} pid {worker}"
        fill = "#f5f7fb" if i % 2 == 0 else "#fff"
        out.append(f'<rect x="{LABEL_W}" y="{y}" width="{PLOT_W}" height="{LANE_H}" '
                   f'fill="{fill}"/><text x="{LABEL_W - 6}" y="{y + 13}" font-size="10" '
                   f'text-anchor="end">{esc(label)}</text>')
    return out


def _task_boxes(plot: _Plot, tasks: list[tuple]) -> list[str]:
    """One box per task."""
    out = []
    x = plot.x
    for task in tasks:
        step, task_id, s, f, _node, _worker, ok = task
        y = 8 + plot.lane(task) * LANE_H + 2
        w = max(0.8, x(f) - x(s))
        col = plot.colours.get(step, PALETTE[0]) if ok else FAILED
        edge = "" if ok else f' stroke="{FAILED_EDGE}" stroke-width="1.5"'
        out.append(f'<rect class="task{"" if ok else " failed"}" x="{x(s):.1f}" y="{y}" '
                   f'width="{w:.1f}" height="{LANE_H - 4}" fill="{col}"{edge}><title>'
                   f'{esc(step)}/{esc(task_id)}: {f - s:.3f} s{"" if ok else ", failed"}'
                   f'</title></rect>')
    return out


def _busy_bins(plot: _Plot, tasks: list[tuple], lanes: list,
               workers_per_lane: dict | None) -> list[str]:
    """Each lane cut into BINS time bins, shaded by how busy it was (`workers_per_lane`:
    a node's lane holds several workers)."""
    start, bin_w = plot.start, plot.span / BINS
    busy: dict[tuple[int, int], dict[str, float]] = {}
    failed_bins: set[tuple[int, int]] = set()
    for task in tasks:
        step, _task_id, s, f, _node, _worker, ok = task
        lane = plot.lane(task)
        b0, b1 = int((s - start) / bin_w), min(BINS - 1, int((f - start) / bin_w))
        for b in range(b0, b1 + 1):
            lo, hi = start + b * bin_w, start + (b + 1) * bin_w
            used = min(f, hi) - max(s, lo)
            if used > 0:
                cell = busy.setdefault((lane, b), {})
                cell[step] = cell.get(step, 0.0) + used
        if not ok:
            failed_bins.add((lane, b1))
    out = []
    for (lane, b), used in busy.items():
        capacity = bin_w * (workers_per_lane.get(lanes[lane], 1) if workers_per_lane else 1)
        frac = min(1.0, sum(used.values()) / capacity)
        step = max(used, key=used.get)
        col = FAILED if (lane, b) in failed_bins else plot.colours.get(step, PALETTE[0])
        y = 8 + lane * LANE_H + 2
        out.append(f'<rect class="bin" x="{plot.x(start + b * bin_w):.1f}" y="{y}" '
                   f'width="{PLOT_W / BINS + 0.3:.2f}" height="{LANE_H - 4}" fill="{col}" '
                   f'fill-opacity="{0.25 + 0.75 * frac:.2f}"><title>{esc(step)}: '
                   f'{100 * frac:.0f}% busy</title></rect>')
    return out


def _note(n_tasks: int, n_lanes: int, by_node: bool, lead: float) -> str:
    return (f"{n_tasks:,} tasks in {n_lanes} lanes"
            + (" (one per node: too many workers to show one each)" if by_node else
               " (one per worker process)")
            + ("; each lane cut into time bins, darker where busier" if n_tasks > MAX_BOXES
               else "")
            + (f". Time 0 is the first task's start, {lead:.1f} s after the run began "
               "(connecting to Ray, preparing the run)" if lead >= 0.05 else ""))
