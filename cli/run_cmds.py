"""The commands that read runs as a whole: `runs` (a flow's runs, newest first) and
`status` (one run's steps; a failed or interrupted run leads with its failed tasks and the
command that resumes it). They read the datastore through the client: no Ray is started."""

from __future__ import annotations

import json

import typer

from rayflow.exceptions import RayflowException
from rayflow.report.failures import (
    Failure,
    failure_text,
    find_failures,
    format_duration,
    resume_command_of,
    run_duration,
)

from .inspect_cmds import _fmt_time, _split_pathspec, _use_datastore, _use_namespace


def runs(flow_name: str, datastore: str | None, ns: str | None, all_: bool,
         limit: int, json_: bool):

    _use_datastore(datastore)
    _use_namespace(ns, all_)
    out = []
    for run in _flow(flow_name):  # its runs in the namespace
        status = run.status
        duration = run_duration(run._record) if status != "running" else None
        out.append({"id": run.id, "status": status, "start": _fmt_time(run.created_at),
                    "duration_s": _rounded(duration), "tags": sorted(run.user_tags)})
        if len(out) >= limit:
            break
    if json_:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"{'RUN ID':<22} {'STATUS':<11} {'START':<19} {'DURATION':>9}  TAGS")
    for r in out:
        dur = format_duration(r["duration_s"])
        typer.echo(f"{r['id']:<22} {r['status']:<11} {r['start']:<19} {dur:>9}  "
                   f"{', '.join(r['tags'])}")
    if not out:
        typer.echo(f"(no runs of {flow_name} in this namespace; try --all)")


def _flow(flow_name: str):
    """The client's Flow, or one message naming the flows of the datastore that are
    closest in spelling to `flow_name` (`runs HeloFlow`: did you mean HelloFlow?)."""
    import difflib

    from rayflow.client import Flow
    from rayflow.client.base import ObjectNotFound
    from rayflow.client.datastores import current_datastore_url, describe_datastore
    from rayflow.datastore import get_storage

    try:
        return Flow(flow_name, _namespace_check=False)
    except ObjectNotFound as exc:
        try:
            names = [n for n in get_storage(current_datastore_url()).list("")
                     if n.isidentifier() and not n.startswith("_")]
        except Exception:  # noqa: BLE001 - the suggestion is a courtesy
            names = []
        close = difflib.get_close_matches(flow_name, names, n=3, cutoff=0.6)
        if not close:
            raise
        raise type(exc)(f"Flow '{flow_name}' not found in datastore "
                        f"{describe_datastore(current_datastore_url())}. Did you mean "
                        f"{' or '.join(close)}?") from None


def _flow_and_steps(target: str) -> tuple[str, str | None, list[str] | None]:
    """(flow name, run id or None, the flow's steps in graph order or None) of a flow file,
    a flow name or a Flow/run pathspec."""
    import os

    if target.endswith(".py") or os.path.isfile(target):
        from rayflow.runtime.flowfile import load_flow

        loaded = load_flow(target, None, lint_it=False)
        return loaded.name, None, list(loaded.graph.steps)
    parts = _split_pathspec(target)
    if len(parts) > 2:
        raise RayflowException(f"status takes a flow file, a flow name or Flow/run_id, not the "
                               f"{'step' if len(parts) == 3 else 'task'} {target!r}.")
    return parts[0], parts[1] if len(parts) == 2 else None, None


def status(target: str, run_id: str | None, datastore: str | None, ns: str | None,
           json_: bool) -> None:
    from rayflow.client import Run

    _use_datastore(datastore)
    _use_namespace(ns)
    flow_name, in_path, steps = _flow_and_steps(target)
    run_id = run_id or in_path
    if run_id:
        run = Run(f"{flow_name}/{run_id}")
    else:
        run = next(iter(_flow(flow_name)), None)
        if run is None:
            raise RayflowException(f"Flow {flow_name} has no run in namespace "
                                   f"{ns or 'user:<you>'}. Pass --namespace or a run id.")
    counts: dict[str, dict[str, int]] = {}
    for step in run:
        tally = counts.setdefault(step.id, {"done": 0, "failed": 0, "running": 0})
        for task in step:
            key = "done" if task.finished else "failed" if task._ended() else "running"
            tally[key] += 1
    order = steps or sorted(counts, key=lambda name: min(
        (t.created_at for t in run[name]), default=None) or 0)
    info = _status_info(run, order, counts)
    if json_:
        typer.echo(json.dumps(info, indent=2))
        return
    took = f", took {format_duration(info['duration_s'])}" \
        if info["duration_s"] is not None else ""
    typer.echo(f"Run {run.pathspec}: {run.status} (started {info['started']}{took})")
    if info["failures"] is not None:
        failures, total = info["failures"], info["failed_tasks"]
        for line in failure_text([Failure(**f) for f in failures], total, info["resume"],
                                 info["status"]):
            typer.echo(line)
        typer.echo("")
    width = max((len(name) for name in order), default=4)
    for row in info["steps"]:
        parts = [f"{row[k]} {k}" for k in ("done", "failed", "running") if row[k]]
        typer.echo(f"  {row['step']:<{width}}  {', '.join(parts) or 'not started'}")


def _status_info(run, order: list[str], counts: dict) -> dict:
    """What `status` shows of a run; a failed or interrupted one leads with its failed
    tasks (exception, the user's traceback, last log lines) and the command that resumes it."""
    import dataclasses

    status, rec = run.status, run._record
    info = {"pathspec": run.pathspec, "status": status, "started": _fmt_time(run.created_at),
            "duration_s": _rounded(run_duration(rec)) if status != "running" else None,
            "failures": None, "failed_tasks": 0, "resume": None,
            "steps": [{"step": name, **counts.get(name, {"done": 0, "failed": 0,
                                                          "running": 0})} for name in order]}
    if status in ("failed", "interrupted"):
        failures, total = find_failures(run._store, run.id, order)
        info.update(failures=[dataclasses.asdict(f) for f in failures], failed_tasks=total,
                    resume=resume_command_of(rec))
    return info


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
