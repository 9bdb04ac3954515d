"""Vega-Lite specs drawn as static SVG, in Python: what `VegaChart` shows in a card.

rayflow ships no JavaScript chart library and fetches none, so a chart must be drawn here. This
covers the part of Vega-Lite that cards use: inline `data.values` (or `datasets` by name),
the marks bar, line, area, point, circle, square, tick, rule and text; `x`, `y`, `color`
(a field or a fixed value), `size` and `tooltip` encodings; quantitative, temporal, ordinal and
nominal fields; the aggregates count, sum, mean (average), median, min and max; `bin` on x;
`layer`; `title`, `width` and `height`. Each mark carries an SVG <title>, the browser's own
tooltip. A spec outside that subset raises ValueError naming what is missing.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import statistics
from typing import Any

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac"]
MARKS = {"bar", "line", "area", "point", "circle", "square", "tick", "rule", "text"}
AGGREGATES = {"count", "sum", "mean", "average", "median", "min", "max"}


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return None if (isinstance(v, float) and math.isnan(v)) else float(v)
    if isinstance(v, (_dt.datetime, _dt.date)):
        if not isinstance(v, _dt.datetime):
            v = _dt.datetime(v.year, v.month, v.day)
        return v.timestamp() * 1000.0
    try:
        return float(v)
    except (TypeError, ValueError):
        try:
            return _dt.datetime.fromisoformat(str(v)).timestamp() * 1000.0
        except ValueError:
            return None


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def fmt(v: float) -> str:
    if abs(v) >= 1e6 or (0 < abs(v) < 1e-3):
        return f"{v:.2g}"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.3g}"


def _mark_of(spec: dict) -> dict:
    mark = spec.get("mark")
    if mark is None:
        raise ValueError("the spec has no 'mark' (or 'layer')")
    mark = {"type": mark} if isinstance(mark, str) else dict(mark)
    if mark.get("type") not in MARKS:
        raise ValueError(f"mark {mark.get('type')!r} is not drawn here; use one of "
                         f"{', '.join(sorted(MARKS))}")
    return mark


def _values(spec: dict, root: dict) -> list[dict]:
    data = spec.get("data", root.get("data"))
    if data is None:
        return []
    if "values" in data:
        vals = data["values"]
        return [v if isinstance(v, dict) else {"data": v} for v in vals]
    if "name" in data and data["name"] in (root.get("datasets") or {}):
        return list(root["datasets"][data["name"]])
    raise ValueError("only inline data (data.values or datasets) can be drawn offline")


def _aggregate(rows: list[dict], enc: dict) -> list[dict]:
    """Apply an aggregate on x or y (grouping by the other channels' fields)."""
    agg_ch = next((c for c in ("y", "x") if enc.get(c, {}).get("aggregate")), None)
    if agg_ch is None:
        return rows
    ch = enc[agg_ch]
    op = ch["aggregate"]
    if op not in AGGREGATES:
        raise ValueError(f"aggregate {op!r} is not drawn here; use one of {sorted(AGGREGATES)}")
    keys = [enc[c]["field"] for c in ("x", "y", "color") if c != agg_ch and
            isinstance(enc.get(c), dict) and enc[c].get("field")]
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    field = ch.get("field")
    out_field = field or "__count"
    out = []
    for key, members in groups.items():
        nums = [n for n in (_num(m.get(field)) for m in members) if n is not None] if field else []
        if op == "count":
            v = float(len(members))
        elif not nums:
            v = 0.0
        elif op == "sum":
            v = sum(nums)
        elif op in ("mean", "average"):
            v = sum(nums) / len(nums)
        elif op == "median":
            v = statistics.median(nums)
        else:
            v = min(nums) if op == "min" else max(nums)
        row = dict(zip(keys, key))
        row[out_field] = v
        out.append(row)
    enc[agg_ch] = {**ch, "field": out_field, "type": "quantitative"}
    if not ch.get("title"):
        enc[agg_ch]["title"] = f"{op}" + (f" of {field}" if field else " of records")
    return out


def _bin(rows: list[dict], enc: dict) -> list[dict]:
    x = enc.get("x") or {}
    if not x.get("bin"):
        return rows
    field = x["field"]
    nums = [n for n in (_num(r.get(field)) for r in rows) if n is not None]
    if not nums:
        return []
    maxbins = x["bin"].get("maxbins", 10) if isinstance(x["bin"], dict) else 10
    ticks = nice_ticks(min(nums), max(nums), maxbins)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    counts: dict[float, int] = {}
    for n in nums:
        b = ticks[0] + math.floor((n - ticks[0]) / step) * step
        counts[b] = counts.get(b, 0) + 1
    enc["x"] = {**x, "field": "__bin", "type": "quantitative", "bin_step": step,
                "title": x.get("title") or f"{field} (binned)"}
    if not (enc.get("y") or {}).get("field"):
        enc["y"] = {"field": "__count", "type": "quantitative", "title": "count"}
    return [{"__bin": b, "__count": float(c)} for b, c in sorted(counts.items())]


class _Scale:
    def __init__(self, channel: dict, values: list, lo_px: float, hi_px: float, zero: bool):
        self.kind = channel.get("type", "quantitative")
        self.lo_px, self.hi_px = lo_px, hi_px
        if self.kind in ("nominal", "ordinal"):
            cats = list(dict.fromkeys("" if v is None else str(v) for v in values))
            sort = channel.get("sort")
            if isinstance(sort, list):
                cats = [str(s) for s in sort if str(s) in cats] + [c for c in cats if c not in
                                                                   {str(s) for s in sort}]
            elif sort == "descending":
                cats = cats[::-1]
            self.cats = cats
            self.band = (hi_px - lo_px) / max(len(cats), 1)
            self.ticks = cats
        else:
            nums = [n for n in (_num(v) for v in values) if n is not None] or [0.0]
            lo, hi = min(nums), max(nums)
            if zero and self.kind == "quantitative":
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            if channel.get("bin_step"):
                hi = hi + channel["bin_step"]
            dom = (channel.get("scale") or {}).get("domain")
            if isinstance(dom, list) and len(dom) == 2:
                lo, hi = _num(dom[0]) or lo, _num(dom[1]) or hi
            self.ticks = nice_ticks(lo, hi) if self.kind == "quantitative" else \
                [lo + (hi - lo) * i / 4 for i in range(5)]
            self.lo, self.hi = (min(self.ticks[0], lo), max(self.ticks[-1], hi)) \
                if self.kind == "quantitative" else (lo, hi if hi > lo else lo + 1)

    def __call__(self, v) -> float:
        if self.kind in ("nominal", "ordinal"):
            key = "" if v is None else str(v)
            i = self.cats.index(key) if key in self.cats else 0
            return self.lo_px + self.band * (i + 0.5)
        n = _num(v)
        n = self.lo if n is None else n
        span = (self.hi - self.lo) or 1.0
        return self.lo_px + (n - self.lo) / span * (self.hi_px - self.lo_px)

    def label(self, t) -> str:
        if self.kind in ("nominal", "ordinal"):
            return str(t)
        if self.kind == "temporal":
            return _dt.datetime.fromtimestamp(t / 1000.0).strftime("%Y-%m-%d")
        return fmt(t)


def render_svg(spec: dict) -> str:
    """The SVG for a Vega-Lite `spec` (a dict)."""
    if not isinstance(spec, dict):
        raise ValueError("a Vega-Lite spec is a dict")
    width = int(spec.get("width", 420)) if isinstance(spec.get("width"), (int, float)) else 420
    height = int(spec.get("height", 260)) if isinstance(spec.get("height"), (int, float)) else 260
    layers = spec.get("layer") or [spec]
    prepared = []
    for layer in layers:
        mark = _mark_of(layer)
        enc = {k: (dict(v) if isinstance(v, dict) else v)
               for k, v in {**spec.get("encoding", {}), **layer.get("encoding", {})}.items()}
        rows = _bin(_values(layer, spec), enc)
        rows = _aggregate(rows, enc)
        prepared.append((mark, enc, rows))
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    left, right, top, bottom = 56, 16 + 110 * any(
        isinstance(e.get("color"), dict) and e["color"].get("field") for _, e, _ in prepared), \
        18 + (22 if title else 0), 44
    x0, x1, y0, y1 = left, left + width, top + height, top
    xs = [r.get(e["x"]["field"]) for _, e, rows in prepared for r in rows
          if isinstance(e.get("x"), dict) and e["x"].get("field")]
    ys = [r.get(e["y"]["field"]) for _, e, rows in prepared for r in rows
          if isinstance(e.get("y"), dict) and e["y"].get("field")]
    any_x = next((e["x"] for _, e, _ in prepared if isinstance(e.get("x"), dict)), {})
    any_y = next((e["y"] for _, e, _ in prepared if isinstance(e.get("y"), dict)), {})
    bars = any(m["type"] in ("bar", "area") for m, _, _ in prepared)
    sx = _Scale(any_x, xs, x0, x1, zero=bars and any_x.get("type") == "quantitative"
                and not any_x.get("bin_step")) if any_x else None
    sy = _Scale(any_y, ys, y0, y1, zero=bars or any_y.get("type") == "quantitative") \
        if any_y else None
    colors: dict[str, str] = {}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="vega-lite" width="{x1 + right}" '
           f'height="{y0 + bottom}" viewBox="0 0 {x1 + right} {y0 + bottom}" role="img">']
    if title:
        out.append(f'<text x="{left}" y="16" font-size="14" font-weight="600">{_e(title)}</text>')
    out.extend(_axes(sx, sy, any_x, any_y, x0, x1, y0, y1))
    for mark, enc, rows in prepared:
        out.extend(_draw(mark, enc, rows, sx, sy, x0, x1, y0, y1, colors))
    if colors:
        ly = top + 4
        for name, col in colors.items():
            out.append(f'<rect x="{x1 + 12}" y="{ly}" width="10" height="10" fill="{col}"/>'
                       f'<text x="{x1 + 27}" y="{ly + 9}" font-size="11">{_e(name)}</text>')
            ly += 16
    out.append("</svg>")
    return "".join(out)


def _axes(sx, sy, cx, cy, x0, x1, y0, y1) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/>',
           f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>']
    if sx is not None:
        ticks = sx.ticks
        if len(ticks) > 24:
            ticks = ticks[::math.ceil(len(ticks) / 24)]
        for t in ticks:
            px = sx(t)
            out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 4}" stroke="#888"/>'
                       f'<text x="{px:.1f}" y="{y0 + 16}" font-size="10" text-anchor="middle">'
                       f'{_e(sx.label(t))}</text>')
        label = cx.get("title") or cx.get("field", "")
        out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{y0 + 34}" font-size="11" '
                   f'text-anchor="middle" font-weight="600">{_e(label)}</text>')
    if sy is not None:
        for t in sy.ticks:
            py = sy(t)
            out.append(f'<line x1="{x0 - 4}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" '
                       f'stroke="#eee"/><text x="{x0 - 6}" y="{py + 3:.1f}" font-size="10" '
                       f'text-anchor="end">{_e(sy.label(t))}</text>')
        label = cy.get("title") or cy.get("field", "")
        out.append(f'<text transform="translate(12,{(y0 + y1) / 2:.0f}) rotate(-90)" '
                   f'font-size="11" text-anchor="middle" font-weight="600">{_e(label)}</text>')
    return out


def _draw(mark, enc, rows, sx, sy, x0, x1, y0, y1, colors) -> list[str]:
    pen = _Pen(mark, enc, sx, sy, (x0, x1, y0, y1), colors)
    kind = mark["type"]
    if kind in ("line", "area"):
        return _draw_series(pen, rows)
    draw = _ROW_MARKS.get(kind)
    if draw is None:  # a mark not drawn: its colours are still in the legend
        for r in rows:
            pen.color(r)
        return []
    return [piece for r in rows for piece in draw(pen, r, len(rows))]


class _Pen:
    """What every mark of one layer draws with: its colours, tooltips and positions."""

    def __init__(self, mark, enc, sx, sy, box, colors):
        self.mark, self.enc, self.sx, self.sy = mark, enc, sx, sy
        self.x0, self.x1, self.y0, self.y1 = box
        self.colors = colors
        self.xc, self.yc = enc.get("x") or {}, enc.get("y") or {}
        cc = enc.get("color")
        self.fixed = mark.get("color") or (cc.get("value") if isinstance(cc, dict) else None)
        self.cfield = cc.get("field") if isinstance(cc, dict) else None
        tips = enc.get("tooltip")
        self.tip_fields = [t.get("field") for t in (tips if isinstance(tips, list) else [tips])
                           if isinstance(t, dict) and t.get("field")] if tips else []

    def color(self, r):
        if self.cfield:
            key = str(r.get(self.cfield))
            if key not in self.colors:
                self.colors[key] = PALETTE[len(self.colors) % len(PALETTE)]
            return self.colors[key]
        return self.fixed or PALETTE[0]

    def tip(self, r):
        fields = self.tip_fields or [f for f in (self.xc.get("field"), self.yc.get("field"),
                                                 self.cfield) if f]
        text = ", ".join(f"{f}: {r.get(f)}" for f in fields if not f.startswith("__")) or \
            ", ".join(f"{k}: {v}" for k, v in r.items())
        return f"<title>{_e(text)}</title>"

    def px(self, r):
        if self.sx is not None and self.xc.get("field"):
            return self.sx(r.get(self.xc["field"]))
        return (self.x0 + self.x1) / 2

    def py(self, r):
        if self.sy is not None and self.yc.get("field"):
            return self.sy(r.get(self.yc["field"]))
        return (self.y0 + self.y1) / 2


def _draw_series(pen: _Pen, rows) -> list[str]:
    """Line and area marks: one path per colour."""
    out = []
    series: dict[str, list] = {}
    for r in rows:
        series.setdefault(str(r.get(pen.cfield)) if pen.cfield else "", []).append(r)
    mark, sx = pen.mark, pen.sx
    for members in series.values():
        if sx is not None and sx.kind not in ("nominal", "ordinal"):
            members = sorted(members, key=lambda r: _num(r.get(pen.xc.get("field"))) or 0)
        pts = [(pen.px(r), pen.py(r)) for r in members]
        if not pts:
            continue
        col = pen.color(members[0])
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        if mark["type"] == "area":
            poly = f"{pts[0][0]:.1f},{pen.y0} {path} {pts[-1][0]:.1f},{pen.y0}"
            out.append(f'<polygon points="{poly}" fill="{col}" fill-opacity="0.35" '
                       f'stroke="{col}"/>')
        else:
            out.append(f'<polyline points="{path}" fill="none" stroke="{col}" '
                       f'stroke-width="{mark.get("strokeWidth", 2)}"/>')
        if mark.get("point"):
            out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{col}">{pen.tip(r)}'
                       f'</circle>' for (x, y), r in zip(pts, members))
    return out


def _bar(pen: _Pen, r, n_rows: int) -> list[str]:
    col, sx, sy, xc = pen.color(r), pen.sx, pen.sy, pen.xc
    if sx is not None and sx.kind in ("nominal", "ordinal"):
        w = sx.band * 0.8
        x = pen.px(r) - w / 2
    elif xc.get("bin_step"):
        x = sx(r.get(xc["field"]))
        w = max(1.0, sx(r.get(xc["field"]) + xc["bin_step"]) - x - 1)
    else:
        w = max(2.0, (pen.x1 - pen.x0) / max(n_rows, 1) * 0.8)
        x = pen.px(r) - w / 2
    if sy is not None and sy.kind in ("nominal", "ordinal"):  # horizontal bars
        h = sy.band * 0.8
        y = pen.py(r) - h / 2
        x_end = pen.px(r)
        return [f'<rect x="{pen.x0}" y="{y:.1f}" width="{max(0.0, x_end - pen.x0):.1f}" '
                f'height="{h:.1f}" fill="{col}">{pen.tip(r)}</rect>']
    top_y = pen.py(r)
    base = sy(0) if sy is not None and sy.kind == "quantitative" else pen.y0
    return [f'<rect x="{x:.1f}" y="{min(top_y, base):.1f}" width="{w:.1f}" '
            f'height="{abs(base - top_y):.1f}" fill="{col}">{pen.tip(r)}</rect>']


def _point(pen: _Pen, r, n_rows: int) -> list[str]:
    enc, col = pen.enc, pen.color(r)
    size = (enc.get("size") or {}).get("value", 30) if isinstance(enc.get("size"), dict) \
        else 30
    filled = pen.mark["type"] == "circle" or pen.mark.get("filled")
    return [f'<circle cx="{pen.px(r):.1f}" cy="{pen.py(r):.1f}" r="{math.sqrt(size) / 2:.1f}" '
            f'fill="{col if filled else "none"}" stroke="{col}">{pen.tip(r)}</circle>']


def _square(pen: _Pen, r, n_rows: int) -> list[str]:
    return [f'<rect x="{pen.px(r) - 3:.1f}" y="{pen.py(r) - 3:.1f}" width="6" height="6" '
            f'fill="{pen.color(r)}">{pen.tip(r)}</rect>']


def _tick(pen: _Pen, r, n_rows: int) -> list[str]:
    px, py = pen.px(r), pen.py(r)
    return [f'<line x1="{px - 6:.1f}" y1="{py:.1f}" x2="{px + 6:.1f}" '
            f'y2="{py:.1f}" stroke="{pen.color(r)}" stroke-width="2">{pen.tip(r)}</line>']


def _rule(pen: _Pen, r, n_rows: int) -> list[str]:
    col = pen.color(r)
    if pen.xc.get("field") and not pen.yc.get("field"):
        return [f'<line x1="{pen.px(r):.1f}" y1="{pen.y0}" x2="{pen.px(r):.1f}" y2="{pen.y1}" '
                f'stroke="{col}">{pen.tip(r)}</line>']
    return [f'<line x1="{pen.x0}" y1="{pen.py(r):.1f}" x2="{pen.x1}" y2="{pen.py(r):.1f}" '
            f'stroke="{col}">{pen.tip(r)}</line>']


def _text(pen: _Pen, r, n_rows: int) -> list[str]:
    col = pen.color(r)
    tc = pen.enc.get("text") or {}
    text = r.get(tc.get("field")) if isinstance(tc, dict) and tc.get("field") else \
        (tc.get("value", "") if isinstance(tc, dict) else "")
    return [f'<text x="{pen.px(r):.1f}" y="{pen.py(r):.1f}" font-size="11" '
            f'text-anchor="middle" fill="{col}">{_e(text)}</text>']


_ROW_MARKS = {"bar": _bar, "point": _point, "circle": _point, "square": _square,
              "tick": _tick, "rule": _rule, "text": _text}
