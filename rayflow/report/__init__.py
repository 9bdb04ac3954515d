"""The run report: one self-contained HTML page per run, written beside the run's records
(`<flow>/<run>/_report.html` in the datastore) when the run ends, and rebuilt on demand by
`rayflow card Flow/run`.

It shows the flow graph coloured by status, a task timeline with one lane per worker, a table
per step (tasks, retries, failures, duration percentiles, peak memory, the CPUs and GPUs asked
for), the cards of the steps that have @card, and the run's parameters, tags, user, code hash
and Ray dashboard. Everything is inline (style and SVG; no script, nothing fetched), so it opens
offline; a 100,000-task run is drawn in aggregate (see timeline.py), not box by box.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from ..cards.html import esc, page
from .failures import (
    INTERRUPTED,
    find_failures,
    format_duration,
    resume_command_of,
    run_duration,
)
from .graph import graph_svg
from .pools import pools_section
from .timeline import step_colours, timeline_svg

REPORT_FILE = "_report.html"  # "_": not a step, for the readers of the run folder
MAX_CARD_LINKS = 20  # per step


def report_path(ds, run_id: str) -> str:
    return f"{ds.run_path(run_id)}/{REPORT_FILE}"


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def _secs(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def _bytes(n: int) -> str:
    if not n:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "–"


def collect(ds, run_id: str, graph_info: dict | None = None, rows=None) -> dict:
    """Everything the report shows: from `rows` (a TaskRows the driver kept) when given, else
    read from the datastore."""
    rec = ds.read_run(run_id)
    if rec is None:
        from ..exceptions import DataStoreError

        raise DataStoreError(f"Run {ds.flow_name}/{run_id} does not exist in {ds.url}.")
    info = graph_info or rec.graph or {}
    steps = [s["name"] for s in info.get("steps", [])]
    for name in ds.list_steps(run_id):
        if name not in steps:
            steps.append(name)
    if rows is not None:
        per_step = rows.per_step()
        for s in steps:
            per_step.setdefault(s, {"tasks": 0, "done": 0, "failed": 0, "retried": 0,
                                    "durations": [], "peak_rss": 0, "cloned": 0})
        steps += [s for s in per_step if s not in steps]
        return {"run": rec, "status": ds.run_status(rec), "info": info, "steps": steps,
                "tasks": rows.timeline(), "per_step": per_step}
    tasks, per_step = [], {}
    for step in steps:
        try:
            index = ds.step_records(run_id, step)
        except FileNotFoundError:
            index = {}
        durs, rss, done, failed, retried = [], 0, 0, 0, 0
        for task_id, (r, is_done) in index.items():
            ok = r.status == "success"
            if is_done:
                done += 1
            elif not ok:
                failed += 1
            if r.attempt > 0:
                retried += 1
            if r.started_at and r.finished_at:
                tasks.append((step, task_id, r.started_at, r.finished_at, r.node, r.worker, ok))
                if ok:
                    durs.append(r.finished_at - r.started_at)
            rss = max(rss, r.peak_rss or 0)
        durs.sort()
        per_step[step] = {"tasks": len(index), "done": done, "failed": failed,
                          "retried": retried, "durations": durs, "peak_rss": rss,
                          "cloned": sum(1 for r, _ in index.values() if r.origin_pathspec)}
    return {"run": rec, "status": ds.run_status(rec), "info": info, "steps": steps,
            "tasks": tasks, "per_step": per_step}


def _step_status(s: dict, run_status: str) -> str:
    if s["failed"]:
        return "failed"
    if s["tasks"] == 0:
        return "not-run"
    if s["done"] == s["tasks"]:
        return "done"
    return "running" if run_status == "running" else "failed"


def _card_links(ds, run_id: str, step: str) -> str:
    from ..cards.store import list_cards

    links = []
    try:
        task_ids = ds.list_tasks(run_id, step)[:MAX_CARD_LINKS]
    except FileNotFoundError:
        return ""
    for task_id in task_ids:
        for meta in list_cards(ds, run_id, step, task_id):
            href = f"{step}/{task_id}/cards/{meta.stem()}.html"
            label = f"{task_id}: {meta.type}" + (f" ({meta.id})" if meta.id else "")
            links.append(f'<a href="{esc(href)}">{esc(label)}</a>')
    return ", ".join(links)


def build_report(ds, run_id: str, graph_info: dict | None = None, rows=None) -> str:
    t0 = time.perf_counter()
    data = collect(ds, run_id, graph_info, rows)
    rec, run_status, per_step = data["run"], data["status"], data["per_step"]
    info_steps = {s["name"]: s for s in data["info"].get("steps", [])}
    status = {s: _step_status(per_step[s], run_status) for s in data["steps"]}
    counts = {s: per_step[s]["tasks"] for s in data["steps"]}
    cards = []
    for s in data["steps"]:
        if "card" in (info_steps.get(s, {}).get("decorators") or []):
            links = _card_links(ds, rec.run_id, s)
            if links:
                cards.append(f"<p><b>{esc(s)}</b>: {links}</p>")
    body = _head(rec, run_status, len(data["tasks"])) + _failures(ds, rec, run_status,
                                                               data["steps"]) + [
        "<h2>Graph</h2>", '<div id="graph">',
        graph_svg(data["info"].get("steps") or [{"name": s, "type": "linear", "next": []}
                                                for s in data["steps"]], status, counts),
        "</div>", "<h2>Timeline</h2>", '<div id="timeline-box">',
        timeline_svg(data["tasks"], data["steps"], rec.started_at), "</div>",
        "<h2>Steps</h2>", _step_table(data["steps"], per_step, status, info_steps)]
    body += pools_section(ds, rec.run_id, rec.started_at, rec.finished_at)
    if cards:
        body += ["<h2>Cards</h2>", '<div id="cards">', "".join(cards), "</div>"]
    params = "".join(f"<tr><td><code>{esc(k)}</code></td><td>{esc(_short(v))}</td></tr>"
                     for k, v in sorted(rec.params.items())) or \
        "<tr><td colspan=2>No parameters.</td></tr>"
    body += ["<h2>Run</h2>", f'<table class="kv" id="run-meta">{_run_meta(rec, ds)}</table>',
             "<h2>Parameters</h2>", f'<table class="kv" id="params">{params}</table>',
             f'<div class="label">Report built {_when(time.time())} in '
             f'{time.perf_counter() - t0:.2f} s by rayflow.</div>']
    return page(f"{rec.pathspec} — rayflow run report", "".join(body))


def _head(rec, run_status: str, n_tasks: int) -> list[str]:
    took = run_duration(rec)
    took = "" if took is None else \
        f', took <span id="run-duration">{esc(format_duration(took))}</span>'
    return [f"<h1>{esc(rec.pathspec)}</h1>",
            f'<div class="sub"><span class="pill st-{esc(_pill(run_status))}" id="run-status">'
            f"{esc(run_status)}</span> &nbsp; started {_when(rec.started_at)}{took} &nbsp; "
            f"{n_tasks:,} tasks</div>"]


def _failures(ds, rec, run_status: str, steps: list[str]) -> list[str]:
    """A failed or interrupted run leads with what went wrong and how to go on: each failed
    task's exception, the user's traceback, its last log lines, and the resume command."""
    if run_status not in ("failed", "interrupted"):
        return []
    failures, total = find_failures(ds, rec.run_id, steps)
    out = ['<section id="failures">', "<h2>What went wrong</h2>"]
    if run_status == "interrupted":
        out.append(f'<div class="error" id="interrupted">{esc(INTERRUPTED)}'
                   + (" Tasks it was running then may show as failed below." if failures
                      else "") + "</div>")
    elif not failures:
        out.append('<div class="error">The run failed before any task failed: its driver '
                   "could not go on.</div>")
    for f in failures:
        out.append(f'<div class="error failure" data-step="{esc(f.step)}" '
                   f'data-task="{esc(f.pathspec)}"><b>Step <code>{esc(f.step)}</code> failed'
                   f"</b> in task <code>{esc(f.pathspec)}</code> (attempt {f.attempt})"
                   f'<div class="exc"><b>{esc(f.type)}</b>: {esc(f.message)}</div>')
        if f.traceback:
            out.append('<div class="label">Traceback (the step\'s own frames)</div>'
                       f'<pre class="traceback">{esc(f.traceback)}</pre>')
        if f.log_tail:
            out.append(f'<div class="label">Last {len(f.log_tail)} log lines</div>'
                       f'<pre class="log-tail">{esc(chr(10).join(f.log_tail))}</pre>')
        out.append("</div>")
    if total > len(failures):
        out.append(f'<div class="label">… and {total - len(failures):,} more failed tasks '
                   f"(<code>rayflow status {esc(rec.pathspec)}</code> counts them).</div>")
    fix = "Fix the flow, then resume" if failures and run_status == "failed" else "Resume"
    out.append(f"<p>{fix} the run (finished tasks are cloned, not run again):</p>"
               f'<pre id="resume-command">{esc(resume_command_of(rec))}</pre></section>')
    return out


def _run_meta(rec, ds) -> str:
    """The rows of the run's table: who, which code, where."""
    meta = [("User", rec.user), ("Tags", ", ".join(sorted({*rec.tags, *rec.sys_tags})) or "–"),
            ("Code hash", rec.code_hash or "–"), ("Flow file", rec.flow_file or "–"),
            ("Datastore", rec.datastore or ds.url),
            ("Ray", ray_described(rec))]
    if rec.origin_run_id:
        meta.append(("Resumed from", f"{rec.flow}/{rec.origin_run_id}"))
    if rec.project:
        meta.append(("Project", f"{rec.project.get('project_name')} / "
                                f"{rec.project.get('branch_name')}"))
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in meta)
    if rec.dashboard_url:
        rows += (f'<tr><td>Ray dashboard</td><td><a id="ray-dashboard" href="'
                 f'{esc(rec.dashboard_url)}">{esc(rec.dashboard_url)}</a></td></tr>')
    return rows


def ray_described(rec) -> str:
    """Which Ray the run ran on, as the run recorded it."""
    kind, address = getattr(rec, "ray_kind", None), rec.ray_address
    if kind == "embedded":
        return "embedded: started by the run on this machine, stopped with it"
    if kind == "warm":
        return (f"the warm local Ray at {address or 'this machine'} (kept between runs; "
                "`rayflow down` ends it)")
    if kind == "cluster":
        return f"the cluster at {address}"
    if kind == "existing":
        return "the Ray the driver's process had already joined"
    if kind == "none":
        return "none: every task ran in the driver (--executor inline)"
    return f"the cluster at {address}" if address else "not recorded (an older run)"


def _step_table(steps: list[str], per_step: dict, status: dict, info_steps: dict) -> str:
    colours = step_colours(steps)
    table = ["<table id=\"step-table\"><thead><tr><th>Step</th><th>Status</th>"
             "<th class=num>Tasks</th><th class=num>Done</th><th class=num>Failed</th>"
             "<th class=num>Retried</th><th class=num>p50</th><th class=num>p90</th>"
             "<th class=num>p99</th><th class=num>Max</th><th class=num>Peak memory</th>"
             "<th class=num>CPU</th><th class=num>GPU</th><th class=num>Memory asked</th>"
             "</tr></thead><tbody>"]
    for s in steps:
        ps, d = per_step[s], per_step[s]["durations"]
        res = info_steps.get(s, {}).get("resources") or {}
        dyn = " (per split)" if res.get("dynamic") else ""
        cloned = f" ({ps['cloned']:,} cloned)" if ps["cloned"] else ""
        table.append(
            f'<tr data-step="{esc(s)}"><td><i style="display:inline-block;width:9px;height:9px;'
            f'background:{colours[s]};margin-right:6px"></i>{esc(s)}</td>'
            f'<td><span class="pill st-{_pill(status[s])}">{esc(status[s])}</span></td>'
            f"<td class=num>{ps['tasks']:,}{cloned}</td><td class=num>{ps['done']:,}</td>"
            f"<td class=num>{ps['failed']:,}</td><td class=num>{ps['retried']:,}</td>"
            f"<td class=num>{_secs(_pct(d, .5))}</td><td class=num>{_secs(_pct(d, .9))}</td>"
            f"<td class=num>{_secs(_pct(d, .99))}</td><td class=num>{_secs(d[-1] if d else None)}"
            f"</td><td class=num>{_bytes(ps['peak_rss'])}</td>"
            f"<td class=num>{_fmt_res(res.get('cpu'))}{dyn}</td>"
            f"<td class=num>{_fmt_res(res.get('gpu'))}</td>"
            f"<td class=num>{_fmt_res(res.get('memory'), ' MB')}</td></tr>")
    table.append("</tbody></table><div class=\"label\">Durations are of finished tasks; peak "
                 "memory is the largest peak resident set of a worker process when one of the "
                 "step's tasks ended.</div>")
    return "".join(table)


def _pill(status: str) -> str:
    return {"success": "done", "done": "done", "failed": "failed", "running": "running"}.get(
        status, "not-run")


def _fmt_res(v, unit: str = "") -> str:
    if v is None or v == 0:
        return "–" if v is None else "0"
    return f"{v:g}{unit}"


def _short(v, limit: int = 300) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def write_report(ds, run_id: str, graph_info: dict | None = None, rows=None) -> str:
    """Build the report and save it beside the run's records. Returns where it is: a local
    file path for a local datastore, else its URL."""
    html = build_report(ds, run_id, graph_info, rows)
    path = report_path(ds, run_id)
    ds.storage.put(path, html.encode("utf-8"))
    return located(ds, path)


def located(ds, path: str) -> str:
    import os

    root = getattr(ds.storage, "root", None)
    if ds.storage.is_local and root:
        return os.path.join(root, path)
    return f"{ds.url.rstrip('/')}/{path}"
