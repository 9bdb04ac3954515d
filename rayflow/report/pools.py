"""The run report's "Actor pools" section: each pool drawn as its live size over time (actors
whose process is up), with what happened to its actors: requested, up, ended (and why), died.

The driver keeps the pools' log (runtime/pools.PoolLog) and saves it beside the run's records
as `_pools.json` when the run ends (`save_pool_log`); the report, built then or later by
`rayflow card`, reads it back. A run without pools has no such file and no section.
"""

from __future__ import annotations

import json

from ..cards.html import esc

POOLS_FILE = "_pools.json"  # "_": not a step, for the readers of the run folder
W, H, LABEL_W, PAD = 900, 90, 190, 14
MAX_ROWS = 200  # events listed per pool


def _path(ds, run_id: str) -> str:
    return f"{ds.run_path(run_id)}/{POOLS_FILE}"


def save_pool_log(ds, run_id: str, log) -> None:
    data = {"history": [list(h) for h in log.history], "events": [list(e) for e in log.events]}
    ds.storage.put(_path(ds, run_id), json.dumps(data).encode("utf-8"))


def load_pool_log(ds, run_id: str) -> dict | None:
    try:
        return json.loads(ds.storage.get(_path(ds, run_id)))
    except Exception:  # noqa: BLE001 - no pools in this run, or an older run
        return None


def pools_section(ds, run_id: str, t0: float | None, t1: float | None) -> list[str]:
    """HTML of the section, [] for a run without pools. `t0`, `t1`: the run's start and end
    (the chart's time axis)."""
    log = load_pool_log(ds, run_id)
    if not log or not log.get("events"):
        return []
    events = [tuple(e) for e in log["events"]]
    names = list(dict.fromkeys(e[1] for e in events))
    start = t0 if t0 is not None else min(e[0] for e in events)
    end = max([t1 or 0.0] + [e[0] for e in events])
    out = ["<h2>Actor pools</h2>", '<div id="pools">']
    for name in names:
        sizes = [(t, n) for t, p, n in log.get("history", []) if p == name]
        mine = [e for e in events if e[1] == name]
        out.append(f"<h3>Pool <code>{esc(name)}</code></h3>")
        out.append(pool_svg(sizes, mine, start, max(end - start, 1e-3)))
        out.append(_event_table(mine, start))
    out.append("</div>")
    return out


def pool_svg(sizes: list, events: list, start: float, span: float) -> str:
    """The pool's actors up over time as a step line; a red tick where an actor died."""
    top = max([n for _, n in sizes] + [1])

    def x(ts: float) -> float:
        return LABEL_W + (ts - start) / span * W

    def y(n: float) -> float:
        return PAD + (H - 2 * PAD) * (1 - n / top)

    pts, last = [f"{x(start):.1f},{y(0):.1f}"], 0
    for ts, n in sizes:
        pts += [f"{x(ts):.1f},{y(last):.1f}", f"{x(ts):.1f},{y(n):.1f}"]
        last = n
    pts.append(f"{x(start + span):.1f},{y(last):.1f}")
    deaths = "".join(f'<line class="died" x1="{x(e[0]):.1f}" x2="{x(e[0]):.1f}" y1="{PAD}" '
                     f'y2="{H - PAD}" stroke="#d64545" stroke-width="2"><title>actor {e[2]} '
                     f'died at {e[0] - start:.2f} s: {esc(e[4])}</title></line>'
                     for e in events if e[3] == "died")
    ticks = "".join(f'<text x="{LABEL_W - 6}" y="{y(n) + 4:.1f}" text-anchor="end" '
                    f'font-size="11">{n}</text>' for n in sorted({0, top}))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="pool-size" width="{LABEL_W + W + 10}"'
            f' height="{H + 16}"><text x="4" y="{H / 2:.0f}" font-size="12">actors up</text>'
            f'{ticks}<polyline fill="none" stroke="#4c78a8" stroke-width="2" '
            f'points="{" ".join(pts)}"/>{deaths}<text x="{LABEL_W}" y="{H + 12}" '
            f'font-size="11">0 s</text><text x="{LABEL_W + W}" y="{H + 12}" font-size="11" '
            f'text-anchor="end">{span:.1f} s</text></svg>')


def _event_table(events: list, start: float) -> str:
    rows = "".join(f"<tr><td>{e[0] - start:.2f} s</td><td>{e[2]}</td><td>{esc(e[3])}</td>"
                   f"<td>{esc(e[4])}</td></tr>" for e in events[:MAX_ROWS])
    more = (f'<div class="label">{len(events) - MAX_ROWS} more events not listed.</div>'
            if len(events) > MAX_ROWS else "")
    return ('<table class="pool-events"><tr><th>at</th><th>actor</th><th>event</th>'
            f"<th>detail</th></tr>{rows}</table>{more}")
