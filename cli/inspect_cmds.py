"""Commands about runs that already exist: resume, logs, dump, runs, tag, status.

Only `resume` needs Ray; the others read the datastore through the client, so they work on a
laptop with nothing running.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from rayflow.exceptions import ParameterError, RayflowException

from .common import _datastore, _execute, _load, run_options
from .options import (
    NOT_FOR_ONE_TASK,
    RUN_SETTINGS,
    DatastoreOpt,
    FlowFile,
    JsonOpt,
    NamespaceOpt,
    RunSettings,
    with_run_options,
)


def _use_datastore(url: str | None) -> str:
    from rayflow.client import metadata

    resolved = _datastore(url)
    metadata(resolved)
    return resolved


def _use_namespace(ns: str | None, all_: bool = False) -> None:
    from rayflow.client import default_namespace, namespace

    if all_ or ns in ("*", "none", "None", "global"):
        namespace(None)
    elif ns:
        namespace(ns)
    else:
        default_namespace()


def resume(ctx: typer.Context, file: str, step: str | None, origin_run_id: str | None,
           ns: str | None, settings, clone_changed: bool = False):
    from rayflow.runtime.resume import ResumeRequest

    if ctx.args:
        raise ParameterError(
            "resume takes no flow parameters: it reuses the origin run's values. "
            f"Unexpected: {' '.join(ctx.args)}")
    loaded = _load(file, settings.flow)
    request = ResumeRequest(origin_run_id=origin_run_id, step=step, namespace=ns,
                            clone_changed=clone_changed)
    _execute(loaded, None, run_options(settings, resume=request))


def _split_pathspec(pathspec: str) -> list[str]:
    parts = [p for p in pathspec.strip("/").split("/") if p]
    if not 1 <= len(parts) <= 5:
        raise RayflowException(
            f"{pathspec!r} is not a pathspec. Use Flow, Flow/run, Flow/run/step or "
            f"Flow/run/step/task.")
    return parts


def _task_of(pathspec: str):
    """A Task for Flow/run/step/task, or for Flow/run/step when that step has one task."""
    from rayflow.client import Step, Task

    parts = _split_pathspec(pathspec)
    if len(parts) == 4:
        return Task("/".join(parts))
    if len(parts) == 3:
        tasks = list(Step("/".join(parts)))
        if len(tasks) == 1:
            return tasks[0]
        raise RayflowException(
            f"Step {pathspec} has {len(tasks)} tasks; name one, e.g. {pathspec}/"
            f"{tasks[0].id if tasks else '0'}.")
    raise RayflowException(f"{pathspec!r} does not name a task: use Flow/run/step/task.")


def logs(pathspec: str, streams: list[str], datastore: str | None, timestamps: bool = False,
         attempt: int | None = None):
    """Metaflow's `logs`: each task's lines as it printed them, on stdout (stdout's, then
    stderr's), after a line on stderr naming the task and one naming the stream."""
    from rayflow.client import Step, Task

    _use_datastore(datastore)
    _use_namespace(None, all_=True)
    parts = _split_pathspec(pathspec)
    if len(parts) == 3:
        tasks = sorted(Step("/".join(parts)), key=lambda t: natural_id(t.id))
    elif len(parts) == 4 and attempt is not None:
        tasks = [Task("/".join(parts), attempt=attempt)]
    else:
        tasks = [_task_of(pathspec)]
    if not tasks:
        raise RayflowException(f"No tasks found at {pathspec}: none exist or none has "
                               "started yet.")
    for task in tasks:
        _, run_id, step, task_id = task.path_components
        typer.echo(f"Dumping logs of run_id={run_id} step={step} task_id={task_id}", err=True)
        for stream in streams:
            typer.echo(stream, err=True)
            for stamp, line in task.loglines(stream):
                when = f"{stamp:%Y-%m-%d %H:%M:%S.%f}"[:-3] + " " if timestamps else ""
                typer.echo(f"{when}{line}")


def natural_id(task_id: str) -> tuple:
    return (0, int(task_id), "") if task_id.isdigit() else (1, 0, task_id)


# What Metaflow's dump shows for a value over --max-value-size.
TOO_LARGE = "< artifact too large >"


def dump(pathspec: str, datastore: str | None, max_chars: int, json_: bool,
         include: str = "", max_value_size: int | None = None):
    _use_datastore(datastore)
    _use_namespace(None, all_=True)
    task = _task_of(pathspec)
    lineage = task.lineage
    wanted = {name for name in include.split(",") if name}
    rows = []
    for art in task:
        if wanted and art.id not in wanted:
            continue
        rows.append({"name": art.id, "type": art.type, "size": art.size, "sha": art.sha,
                     "value": _dump_value(art, max_chars, max_value_size)})
    if json_:
        typer.echo(json.dumps({"pathspec": task.pathspec, "artifacts": rows,
                               "lineage": lineage, "origin_pathspec": task.origin_pathspec},
                              indent=2, default=str))
        return
    typer.echo(f"Task {task.pathspec} ({'successful' if task.successful else 'not successful'})")
    typer.echo("Artifacts:")
    for r in rows:
        typer.echo(f"  {r['name']:<20} {r['type']:<28} {r['size']:>10,} B  {r['value']}")
    typer.echo("Lineage:")
    for key, value in lineage.items():
        typer.echo(f"  {key:<14} {_environment_text(value) if key == 'environment' else value}")
    if task.origin_pathspec:
        typer.echo(f"  {'origin':<14} {task.origin_pathspec}")


def _environment_text(env: dict) -> str:
    """A @pypi/@conda task's environment: what it asked for, and what its process had."""
    have = env.get("installed") or {}
    installed = ", ".join(f"{n} {v or '(missing)'}" for n, v in have.items())
    asked = ", ".join(env.get("requirements") or [])
    return f"{env.get('type')} ({env.get('installer')}): {asked}; installed: {installed}"


def _dump_value(art, max_chars: int, max_value_size: int | None) -> str:
    """An artifact's value as dump shows it: Metaflow's --max-value-size (bytes stored; 0
    shows only names) skips larger ones unread; --max-chars cuts a long repr."""
    if max_value_size is not None and (not art.size or art.size > max_value_size):
        return TOO_LARGE
    value = repr(art.data)
    if len(value) > max_chars:
        value = value[:max_chars] + f"... ({len(value):,} chars)"
    return value


def _fmt_time(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def tag_cmd(action: str, run_pathspec: str, tags: list[str], datastore: str | None):
    from rayflow.client import Run

    _use_datastore(datastore)
    _use_namespace(None, all_=True)
    parts = _split_pathspec(run_pathspec)
    if len(parts) == 1:
        if action != "list":
            raise ParameterError(f"tag {action} needs a run: tag {action} {parts[0]}/RUN_ID "
                                 "TAGS...")
        _list_flow_tags(parts[0])
        return
    run = Run("/".join(parts[:2]))
    if action == "add":
        run.add_tags(tags)
    elif action == "remove":
        run.remove_tags(tags)
    elif action == "replace":
        if len(tags) != 2:
            raise RayflowException("tag replace takes two tags: OLD NEW.")
        run.replace_tag(tags[0], tags[1])
    elif action != "list":
        raise RayflowException(f"Unknown tag action {action!r}: use add, remove, replace or list.")
    typer.echo(" ".join(sorted(run.user_tags)))


def _list_flow_tags(flow_name: str) -> None:
    """`tag list` without a run, as Metaflow's: the tags of every run of the flow."""

    from .run_cmds import _flow

    tags: set[str] = set()
    for run in _flow(flow_name):
        tags |= set(run.user_tags)
    typer.echo(" ".join(sorted(tags)))


def spin(file: str, pathspec: str, settings, artifacts_module: str | None,
         skip_decorators: bool, persist: bool, ns: str | None, args: list[str]) -> None:
    import sys

    from rayflow.exceptions import StepFailed
    from rayflow.runtime.spin import SpinOptions
    from rayflow.runtime.spin import spin as spin_task

    from .params import split_config_args

    loaded = _load(file, settings.flow)
    files, values, rest = split_config_args(loaded.cls, list(args))
    if rest:
        raise RayflowException(
            f"Unknown argument {' '.join(rest)!r} for spin: a spun task keeps the parameters "
            f"of its run, so spin takes no flow parameters. Give configs with --config NAME "
            f"FILE or --config-value NAME JSON.")
    url = _datastore(settings.datastore)
    print(f"Spinning {pathspec} of {loaded.name} (datastore {url})",
          file=sys.stderr, flush=True)
    result = spin_task(loaded, pathspec, url, SpinOptions(
        artifacts_module=artifacts_module, skip_decorators=skip_decorators, persist=persist,
        namespace=ns, run_id_file=settings.run_id_file,
        runner_attribute_file=settings.runner_attribute_file,
        with_decorators=tuple(settings.with_ or ()), config_files=files, config_values=values,
        branch=settings.branch, production=settings.production or None))
    where = (f" Read it with Task({result.pathspec!r}, datastore={result.datastore!r})."
             if result.datastore else " (not kept: --no-persist)")
    if not result.ok:
        err = result.error
        detail = err.traceback or f"{err.type}: {err.message}"
        raise StepFailed(f"The spun task {result.pathspec} (of {result.origin}) failed:\n\n"
                         f"{detail}\n{where.strip()}", step=result.pathspec.split("/")[2])
    print(f"Spun {result.origin} again as {result.pathspec}.{where}", file=sys.stderr,
          flush=True)


def register(app: typer.Typer) -> None:
    """Attach the commands to the app, with their options and help."""
    register_card(app)
    _register_rerun_commands(app)
    _register_read_commands(app)
    _register_run_commands(app)


def _register_rerun_commands(app: typer.Typer) -> None:
    """`resume` and `spin`: commands that run a past run's tasks again."""

    @app.command("resume", context_settings=RUN_SETTINGS,
                 short_help="Resume a failed run, cloning its finished tasks.")
    @with_run_options
    def resume_command(
            ctx: typer.Context, file: FlowFile,
            step: Annotated[str | None, typer.Argument(
                help="Re-run from this step (and everything after it).")] = None,
            origin_run_id: Annotated[str | None, typer.Option(
                "--origin-run-id", help="The run to resume (default: your latest run).")] = None,
            namespace: NamespaceOpt = None,
            clone_changed: Annotated[bool, typer.Option(
                "--clone-changed", help="Reuse finished tasks of steps whose code changed "
                                        "since the origin run (Metaflow's behaviour); by "
                                        "default they run again.")] = False,
            *, settings: RunSettings):
        """Resume a failed run: finished tasks are cloned (no bytes copied), the rest runs."""
        resume(ctx, file, step, origin_run_id, namespace, settings, clone_changed)

    @app.command("spin", context_settings=RUN_SETTINGS,
                 short_help="Run one past task again here, from its inputs.")
    @with_run_options(hidden=NOT_FOR_ONE_TASK)
    def spin_command(
            ctx: typer.Context, file: FlowFile,
            pathspec: Annotated[str, typer.Argument(
                help="The task: STEP (latest run), RUN_ID/STEP, RUN_ID/STEP/TASK_ID or "
                     "Flow/RUN_ID/STEP/TASK_ID.")],
            artifacts_module: Annotated[str | None, typer.Option(
                "--artifacts-module", help="A Python file with ARTIFACTS = {name: value}: "
                                           "these inputs replace the recorded ones.")] = None,
            skip_decorators: Annotated[bool, typer.Option(
                "--skip-decorators", help="Run the step without its decorators.")] = False,
            persist: Annotated[bool, typer.Option(
                "--persist/--no-persist", help="Keep the spun task's artifacts (in "
                                               "<datastore>/_spin).")] = True,
            namespace: NamespaceOpt = None, *, settings: RunSettings):
        """Run one past task again here, from its recorded inputs, without touching its run.
        Configs may be given again (--config NAME FILE, --config-value NAME JSON); flow
        parameters may not: the task keeps its run's."""
        spin(file, pathspec, settings, artifacts_module, skip_decorators, persist, namespace,
             list(ctx.args))


def _register_read_commands(app: typer.Typer) -> None:
    """Commands that read what tasks left: logs, dump."""

    @app.command("logs", short_help="Print what a task (or a step's tasks) printed.")
    def logs_command(
            pathspec: Annotated[str, typer.Argument(help="Flow/run/step/task (or Flow/run/step).")],
            stdout: Annotated[bool, typer.Option("--stdout", help="Only stdout.")] = False,
            stderr: Annotated[bool, typer.Option("--stderr", help="Only stderr.")] = False,
            timestamps: Annotated[bool, typer.Option(
                "--timestamps", help="Each line with when it was written.")] = False,
            attempt: Annotated[int | None, typer.Option(
                "--attempt", help="This attempt (default: the latest).")] = None,
            datastore: DatastoreOpt = None):
        """Print what a task (or every task of a step) printed: stdout, then stderr, as
        Metaflow's logs (--stdout or --stderr for one of them)."""
        streams = [name for name, on in (("stdout", stdout), ("stderr", stderr)) if on]
        logs(pathspec, streams or ["stdout", "stderr"], datastore, timestamps, attempt)

    @app.command("dump", short_help="Print a task's artifacts and its lineage.")
    def dump_command(
            pathspec: Annotated[str, typer.Argument(help="Flow/run/step/task.")],
            datastore: DatastoreOpt = None,
            max_chars: Annotated[int, typer.Option(
                "--max-chars", help="Truncate each value to this many characters.")] = 120,
            include: Annotated[str, typer.Option(
                "--include", help="Only these artifacts (comma-separated names).")] = "",
            max_value_size: Annotated[int | None, typer.Option(
                "--max-value-size", min=0,
                help="Show only values stored in at most this many bytes; 0 shows names "
                     "only (as Metaflow's dump).")] = None,
            json_: JsonOpt = False):
        """Print a task's artifacts (name, type, size, value) and its lineage."""
        dump(pathspec, datastore, max_chars, json_, include, max_value_size)



def _register_run_commands(app: typer.Typer) -> None:
    """Commands that read runs as a whole: runs, status, tag."""

    @app.command("runs")
    def runs_command(
            flow_name: Annotated[str, typer.Argument(help="The flow's class name.")],
            datastore: DatastoreOpt = None, namespace: NamespaceOpt = None,
            all_: Annotated[bool, typer.Option("--all", help="Every namespace.")] = False,
            limit: Annotated[int, typer.Option("--limit", help="Most runs to list.")] = 50,
            json_: JsonOpt = False):
        """List a flow's runs: id, status, start, duration and tags."""
        from .run_cmds import runs

        runs(flow_name, datastore, namespace, all_, limit, json_)

    @app.command("status", short_help="Show a run's steps; what failed; how to resume.")
    def status_command(
            target: Annotated[str, typer.Argument(
                metavar="FILE_OR_FLOW", help="A flow file, a flow name, or Flow/run_id.")],
            run_id: Annotated[str | None, typer.Option(
                "--run-id", help="This run (default: the latest in the namespace).")] = None,
            datastore: DatastoreOpt = None, namespace: NamespaceOpt = None,
            json_: JsonOpt = False):
        """Show a run's status and each step's finished, failed and running tasks."""
        from .run_cmds import status

        status(target, run_id, datastore, namespace, json_)

    @app.command("tag")
    def tag_command(
            action: Annotated[str, typer.Argument(help="add, remove, replace or list.")],
            run: Annotated[str, typer.Argument(
                help="Flow/run_id (list: a flow name lists the tags of all its runs).")],
            tags: Annotated[list[str] | None, typer.Argument(help="Tags.")] = None,
            datastore: DatastoreOpt = None):
        """Add, remove, replace or list a run's tags."""
        tag_cmd(action, run, list(tags or []), datastore)


def card(words: list[str], card_type: str | None, card_id: str | None, open_: bool,
         datastore: str | None, rebuild: bool):
    """`rayflow card Flow/run`: the run report; `rayflow card [list|get|view] Flow/run/step/task`:
    that task's cards."""
    action = "show"
    if words and words[0] in ("list", "get", "view", "show"):
        action, words = words[0], words[1:]
    if not words:
        raise RayflowException("Name a run (Flow/run) for its report, or a task "
                               "(Flow/run/step/task) for its cards.")
    url = _use_datastore(datastore)
    _use_namespace(None, all_=True)
    parts = _split_pathspec(words[0])
    if len(parts) == 2:
        path = _run_report(url, parts, rebuild)
        typer.echo(path)
        if open_ or action == "view":
            _open(path)
        return
    from rayflow.cards import CardNotPresentException, get_cards

    task = _task_of(words[0])
    try:
        cards = list(get_cards(task, id=card_id, type=card_type))
    except CardNotPresentException as exc:
        raise RayflowException(str(exc)) from None
    if action == "list":
        for c in cards:
            typer.echo(f"{c.type:<24} id={c.id or '-':<12} {c.hash[:12]}  {c.url}")
        return
    if action == "get":
        out = words[1] if len(words) > 1 else None
        html = cards[0].get()
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(html)
            typer.echo(out)
        else:
            typer.echo(html, nl=False)
        return
    for c in cards:
        path = _local_copy(c.url, c.get())
        typer.echo(path)
        if open_ or action == "view":
            _open(path)


def _run_report(url: str, parts: list[str], rebuild: bool) -> str:
    from rayflow.datastore import FlowDataStore
    from rayflow.report import located, report_path, write_report

    flow, run_id = parts
    ds = FlowDataStore.from_url(url, flow)
    if ds.read_run(run_id) is None:
        raise RayflowException(f"Run {flow}/{run_id} does not exist in {ds.url}. Check the "
                               f"run id (rayflow runs {flow}) and --datastore.")
    path = report_path(ds, run_id)
    if rebuild or ds.run_status(ds.read_run(run_id)) == "running" or \
            not ds.storage.exists(path):
        where = write_report(ds, run_id)
    else:
        where = located(ds, path)
    if "://" in where:  # not on this disk: a local copy to open
        return _local_copy(where, ds.storage.get(path).decode("utf-8"))
    return where


def _local_copy(url: str, html: str) -> str:
    """A file on this machine with the page (cards and reports kept in S3 are copied to
    ~/.rayflow/pages/)."""
    import hashlib
    import os

    if "://" not in url and os.path.exists(url):
        return url
    folder = os.path.join(os.path.expanduser("~"), ".rayflow", "pages")
    os.makedirs(folder, exist_ok=True)
    name = url.rstrip("/").split("/")
    path = os.path.join(folder, hashlib.sha1(url.encode()).hexdigest()[:10] + "-" +
                        "-".join(name[-5:]))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(html)
    return path


def _open(path: str) -> None:
    import webbrowser

    if not webbrowser.open(f"file://{path}"):
        typer.echo(f"No browser could be opened here; open {path} yourself.", err=True)


def register_card(app: typer.Typer) -> None:
    @app.command("card", short_help="Print or open a run's report or a task's cards.")
    def card_command(
            words: Annotated[list[str], typer.Argument(
                metavar="[list|get|view] PATHSPEC [FILE]",
                help="Flow/run for the run report; Flow/run/step/task for the task's cards.")],
            card_type: Annotated[str | None, typer.Option("--type", help="Only cards of this "
                                                                        "type.")] = None,
            card_id: Annotated[str | None, typer.Option("--id", help="Only the card with this "
                                                                    "id.")] = None,
            open_: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
            rebuild: Annotated[bool, typer.Option(
                "--rebuild", help="Build the run report again from the datastore.")] = False,
            datastore: DatastoreOpt = None):
        """Print where a run's report (Flow/run) or a task's cards (Flow/run/step/task) are;
        `list` lists the cards, `get` prints one's HTML, `view` or --open opens it."""
        card(list(words), card_type, card_id, open_, datastore, rebuild)
