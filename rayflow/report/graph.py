"""The flow graph as an SVG picture: steps in layers from start to end, each coloured by
status, foreach fan-outs labelled with their width, switch cases dashed, recursion looped."""

from __future__ import annotations

from ..cards.html import esc
from .textwidth import text_width

STATUS_COLOURS = {"done": "#2e9d57", "failed": "#d64545", "running": "#e0a526",
                  "not-run": "#9aa3b5", "partial": "#e0a526"}
BOX_W, BOX_H, GAP_X, GAP_Y = 168, 54, 28, 46


def step_info(graph, decos=None) -> dict:
    """What the report needs of a flow graph (kept in the run record): steps in graph order."""
    steps = []
    for node in graph:
        res = {}
        if decos is not None and node.name in decos:
            attrs = decos[node.name].resources.attributes
            res = {k: (None if callable(attrs.get(k)) else attrs.get(k))
                   for k in ("cpu", "gpu", "memory")}
            res["dynamic"] = any(callable(attrs.get(k)) for k in ("cpu", "gpu", "memory"))
        steps.append({"name": node.name, "type": node.type, "next": list(node.out_funcs),
                      "in": list(node.in_funcs), "foreach": node.foreach_param,
                      "switch": bool(node.switch_cases), "join_of": node.join_of,
                      "cases": [[repr(v), t] for v, t in node.switch_cases],
                      "decorators": list(node.decorators), "resources": res})
    return {"steps": steps}


def _layers(steps: list[dict]) -> dict[str, int]:
    """Longest distance from start, ignoring edges back to a step already placed (recursion)."""
    order = {s["name"]: i for i, s in enumerate(steps)}
    layer = {steps[0]["name"]: 0} if steps else {}
    for s in steps:  # graph order is topological
        base = layer.get(s["name"], 0)
        layer.setdefault(s["name"], base)
        for t in s["next"]:
            if t in order and order[t] > order[s["name"]]:
                layer[t] = max(layer.get(t, 0), base + 1)
    return layer


def graph_svg(steps: list[dict], status: dict[str, str], counts: dict[str, int]) -> str:
    """The graph, every label whole: boxes as wide as their longest step name, and the
    picture as wide as its widest edge label (labels are measured, see textwidth.py)."""
    box_w = _box_width(steps, counts)
    pos, width, height = _positions(steps, box_w)
    by_name = {s["name"]: s for s in steps}
    parts, right = [], width
    for s in steps:
        if s["name"] in pos:
            edges, edge_right = _edges(s, pos, counts, box_w)
            parts.extend(edges)
            right = max(right, edge_right + GAP_X / 2)
    for name, (x, y) in pos.items():
        parts.append(_box(by_name[name], x, y, status.get(name, "not-run"),
                          counts.get(name, 0), box_w))
    width = right
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="flow-graph" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="flow graph"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" '
            f'refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="#7a8294"/></marker></defs>'
            + "".join(parts) + "</svg>")


def _subtitle(s: dict, n: int) -> str:
    kind = "switch" if s.get("switch") else s["type"]
    return f"{kind} · {n:,} task{'s' if n != 1 else ''}"


def _box_width(steps: list[dict], counts: dict[str, int]) -> float:
    """Wide enough for every step's name (bold, 13 px) and subtitle (11 px)."""
    widest = max((max(text_width(s["name"], 13, bold=True),
                      text_width(_subtitle(s, counts.get(s["name"], 0)), 11))
                  for s in steps), default=0.0)
    return max(BOX_W, widest + 30)


def _positions(steps: list[dict], box_w: float) -> tuple[dict, float, float]:
    """Each step's box corner, and the picture's width and height."""
    layer = _layers(steps)
    rows: dict[int, list[str]] = {}
    for s in steps:
        rows.setdefault(layer.get(s["name"], 0), []).append(s["name"])
    widest = max((len(v) for v in rows.values()), default=1)
    width = widest * (box_w + GAP_X) + GAP_X
    height = len(rows) * (BOX_H + GAP_Y) + GAP_Y
    pos = {}
    for r, names in rows.items():
        span = len(names) * (box_w + GAP_X) - GAP_X
        x0 = (width - span) / 2
        for i, name in enumerate(names):
            pos[name] = (x0 + i * (box_w + GAP_X), GAP_Y / 2 + r * (BOX_H + GAP_Y))
    return pos, width, height


def _edge_label(s: dict, t: str, cases: dict, counts: dict[str, int]) -> str:
    if s.get("foreach"):
        n = counts.get(t)
        return f"foreach {s['foreach']}" + (f" ×{n:,}" if n else "")
    return f"case {cases[t]}" if t in cases else ""


def _edges(s: dict, pos: dict, counts: dict[str, int], box_w: float) -> tuple[list[str], float]:
    """The arrows out of step `s`, with their foreach or case labels; and the rightmost x
    they reach."""
    out, right = [], 0.0
    x, y = pos[s["name"]]
    cases = {t: v for v, t in s.get("cases", [])}
    dashed = ' stroke-dasharray="5,4"' if s.get("switch") else ""
    for t in s["next"]:
        if t not in pos:
            continue
        tx, ty = pos[t]
        if t == s["name"]:  # recursion
            out.append(f'<path d="M{x + box_w},{y + 14} C{x + box_w + 40},{y - 10} '
                       f'{x + box_w + 40},{y + BOX_H + 10} {x + box_w},{y + BOX_H - 14}" '
                       f'fill="none" stroke="#7a8294" marker-end="url(#arrow)"{dashed}/>')
            right = max(right, x + box_w + 40)
            continue
        x1, y1 = x + box_w / 2, y + BOX_H
        x2, y2 = tx + box_w / 2, ty
        if ty <= y:  # an edge going back up: around the side
            out.append(f'<path d="M{x + box_w},{y + BOX_H / 2} C{x + box_w + 60},{y} '
                       f'{tx + box_w + 60},{ty + BOX_H} {tx + box_w},{ty + BOX_H / 2}" '
                       f'fill="none" stroke="#7a8294" marker-end="url(#arrow)"{dashed}/>')
            right = max(right, x + box_w + 60, tx + box_w + 60)
            continue
        mid = (y1 + y2) / 2
        out.append(f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} '
                   f'{x2:.1f},{mid:.1f} {x2:.1f},{y2 - 2:.1f}" fill="none" stroke="#7a8294" '
                   f'marker-end="url(#arrow)"{dashed}/>')
        label = _edge_label(s, t, cases, counts)
        if label:
            lx = (x1 + x2) / 2 + 6
            w = text_width(label, 11)
            right = max(right, lx + w)
            out.append(f'<text class="edge-label" x="{lx:.1f}" y="{mid + 4:.1f}" '
                       f'font-size="11" fill="#444" data-width="{w:.1f}">{esc(label)}</text>')
    return out, right


def _box(s: dict, x: float, y: float, st: str, n: int, box_w: float) -> str:
    """A step's box, coloured by its status `st`, with its kind and `n` tasks."""
    name = s["name"]
    col = STATUS_COLOURS.get(st, "#9aa3b5")
    sub = _subtitle(s, n)
    return (f'<g class="step" data-step="{esc(name)}" data-status="{esc(st)}">'
            f'<title>{esc(name)}: {esc(st)}, {n:,} tasks</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w:.1f}" height="{BOX_H}" rx="8" '
            f'fill="#fff" stroke="{col}" stroke-width="2.5"/>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="8" height="{BOX_H}" rx="3" fill="{col}"/>'
            f'<text x="{x + 18:.1f}" y="{y + 22:.1f}" font-size="13" font-weight="600">'
            f'{esc(name)}</text><text x="{x + 18:.1f}" y="{y + 40:.1f}" '
            f'font-size="11" fill="#5c6478">{esc(sub)}</text></g>')
