"""The `rayflow` command: a thin Typer layer over plain functions in rayflow.

User errors (RayflowException) print one message, without a traceback, and exit 1 (2 for a
bad parameter: a usage error, as in click and Metaflow). Anything else is a rayflow bug and
keeps its traceback. `python flow.py run` lands here too, through
`main_for_flow`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from rayflow import settings
from rayflow.exceptions import RayflowException

from .common import _execute, _load, _say, display_path, run_options
from .helpfmt import use_click_metavars
from .options import RUN_SETTINGS, FlowFile, FlowNameOpt, JsonOpt, RunSettings, with_run_options
from .params import describe_parameters, split_config_args, split_flow_args

use_click_metavars()
app = typer.Typer(
    name="rayflow", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Run Metaflow-style flows on Ray. `rayflow run flow.py` runs on a local Ray that it "
         "leaves warm for the next runs (`rayflow down` ends it; --no-warm: a Ray of the "
         "run's own); `--address` joins a cluster.",
    epilog=settings.help_epilog())



@app.command(context_settings=RUN_SETTINGS)
@with_run_options
def run(ctx: typer.Context, file: FlowFile,
        user_namespace: Annotated[str | None, typer.Option(
            "--namespace", help="The namespace the steps read runs in with the client "
                                "(default user:<you>; --namespace= for the global one), as "
                                "Metaflow's run --namespace. The run's own tags do not change."
        )] = None, *, settings: RunSettings):
    """Run a flow. Flow parameters follow as --name value (see `rayflow show FILE`); configs
    as --config NAME FILE or --config-value NAME JSON."""
    from rayflow.parameters import resolve_parameters

    if settings.executor == "ray":
        from rayflow.runtime.ray_session import join_early

        join_early(settings.address, file, warm=not settings.no_warm)
    loaded = _load(file, settings.flow)
    files, values, words = split_config_args(loaded.cls, list(ctx.args))
    # The flow's parameters are read once its mutators have run (they may add some).
    params = resolve_parameters(loaded.cls, lambda cls: split_flow_args(cls, words),
                                config_files=files, config_values=values,
                                branch=settings.branch, production=settings.production or None,
                                with_decorators=list(settings.with_ or []))
    _execute(loaded, params, run_options(settings, namespace=user_namespace))


@app.command()
def show(file: FlowFile, flow: FlowNameOpt = None, json_: JsonOpt = False):
    """Describe the flow's steps and transitions (no Ray is started)."""
    from rayflow.decorators import flow_decorator_records
    from rayflow.graph.info import to_pod
    from rayflow.runtime.flowfile import load_flow
    from rayflow.unsupported import flow_decorator_lines

    loaded = load_flow(file, flow, lint_it=False, mutate=True)
    if json_:
        typer.echo(json.dumps({**loaded.graph.to_dict(), "flow_decorators": [
            {"name": r.name, "attributes": to_pod(r.attributes)}
            for r in flow_decorator_records(loaded.cls)]}, indent=2))
        return
    decorators = flow_decorator_lines(loaded.cls)
    if decorators:
        typer.echo("Flow decorators:\n" + "\n".join(f"    {d}" for d in decorators) + "\n")
    typer.echo(loaded.graph.describe())
    typer.echo("\nParameters:\n" + describe_parameters(loaded.cls))


@app.command()
def check(file: FlowFile, flow: FlowNameOpt = None):
    """Lint the flow: structure, transitions, joins. Exits 1 on the first problem."""
    from rayflow.runtime.flowfile import load_flow

    loaded = load_flow(file, flow, mutate=True)
    typer.echo(f"Flow {loaded.name} looks good: {len(loaded.graph.steps)} steps, "
               f"{display_path(loaded.file)}.")


@app.command("output-dot", short_help="Print the flow's graph in Graphviz's DOT language.")
def output_dot(file: FlowFile, flow: FlowNameOpt = None):
    """Print the flow's graph in Graphviz's DOT language; `| dot -Tpng > flow.png` draws it."""
    from rayflow.graph.show import graph_to_dot
    from rayflow.runtime.flowfile import load_flow

    typer.echo(graph_to_dot(load_flow(file, flow, lint_it=False, mutate=True).graph), nl=False)


@app.command("output-raw", short_help="Print each step's fields, as Metaflow's output-raw.")
def output_raw(file: FlowFile, flow: FlowNameOpt = None, json_: JsonOpt = False):
    """Print the flow's graph as Metaflow's output-raw does: each step's fields (--json: the
    steps by name and the graph's structure)."""
    from rayflow.graph.raw import raw_dict, raw_text
    from rayflow.runtime.flowfile import load_flow

    graph = load_flow(file, flow, lint_it=False, mutate=True).graph
    typer.echo(json.dumps(raw_dict(graph), indent=4) if json_ else raw_text(graph))


@app.command("up", short_help="Start the warm local Ray now.")
def up(idle_timeout: Annotated[float | None, typer.Option(
           "--idle-timeout", help="Stop after this many seconds with no run (default: "
                                  "RAYFLOW_WARM_IDLE_S, 900).")] = None,
       num_cpus: Annotated[int | None, typer.Option("--num-cpus", help="CPUs it offers.")] = None,
       num_gpus: Annotated[int | None, typer.Option("--num-gpus", help="GPUs it offers.")] = None,
       env: Annotated[bool, typer.Option(
           "--env", help="Print only the shell lines with which your own Ray code joins it: "
                         'eval "$(rayflow up --env)", then ray.init(address="auto").')] = False):
    """Start the warm local Ray now (a run starts it when there is none); `rayflow down`
    stops it. `--env`: the shell lines with which your own Ray code joins it."""
    import shlex

    from rayflow.runtime import warm

    local, started = warm.up(idle_timeout, num_cpus, num_gpus)
    exports = "export " + " ".join(f"{k}={shlex.quote(v)}"
                                   for k, v in warm.user_env(local).items())
    if env:
        typer.echo(exports)
        return
    verb = "Started" if started else "Already up:"
    typer.echo(f"{verb} a local Ray at {local.address} (keeper pid {local.pid}). `rayflow run` "
               f"without --address uses it; it stops after {local.idle_timeout_s:.0f} s "
               "without a run, or with `rayflow down`.\n"
               'Your own Ray code joins it with ray.init(address="auto") in a shell set up '
               f'with:\n  eval "$(rayflow up --env)"\nwhich runs:\n  {exports}')


@app.command("down", short_help="Stop the warm local Ray.")
def down():
    """Stop the warm local Ray (started by `rayflow up` or by a run), with its processes."""
    from rayflow.runtime import warm

    stopped = warm.down()
    typer.echo(f"Stopped the local Ray at {stopped.address} (keeper pid {stopped.pid})."
               if stopped else "No warm local Ray is running.")


def _register_more_commands() -> None:
    from . import inspect_cmds

    inspect_cmds.register(app)


_register_more_commands()


def _cli_error_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage-error) classes. Typer 0.29 and later carry their own copy of click,
    whose classes are not click's: both kinds are caught."""
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    usage: list[type] = [t for t in (getattr(typer, "TyperException", None),) if t]
    try:
        import click
    except ImportError:
        pass
    else:
        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
        usage.append(click.ClickException)
    return tuple(exits), tuple(aborts), tuple(usage)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one message and exit 1; usage errors print
    the command's usage and exit 2."""
    exits, aborts, usage_errors = _cli_error_types()
    args = argv if argv is not None else sys.argv[1:]
    _plain_warnings()
    try:
        app(args=argv, standalone_mode=False, prog_name="rayflow")
        _flow_parameter_help(args)
    except RayflowException as exc:
        _fail(exc)
    except exits as exc:
        _flow_parameter_help(args)
        sys.exit(getattr(exc, "exit_code", 0))
    except aborts:
        _say("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        _say("Interrupted. The run can be continued with `rayflow resume`.")
        sys.exit(130)
    except usage_errors as exc:
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))


def _plain_warnings() -> None:
    """rayflow's own warnings (a damaged record left out of a listing) print as one line,
    without the source line Python shows for a warning."""
    import warnings

    from rayflow.datastore.records import DamagedRecordWarning

    shown = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, DamagedRecordWarning):
            return f"Warning: {message}\n"
        return shown(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def _flow_parameter_help(args: list[str]) -> None:
    """After `rayflow run FLOW.py --help`, list that flow's own parameters too, as Metaflow's
    `python flow.py run --help` does."""
    if "--help" not in args or not args or args[0] not in ("run", "resume"):
        return
    files = [a for a in args[1:] if a.endswith(".py") and os.path.isfile(a)]
    if not files:
        return
    from rayflow.runtime.flowfile import load_flow

    try:
        loaded = load_flow(files[0], None, lint_it=False, mutate=True)
    except RayflowException:
        return
    typer.echo(f"\nParameters of {loaded.name} (pass as --name value):\n"
               f"{describe_parameters(loaded.cls)}")


def _fail(exc: RayflowException) -> None:
    _say(f"{exc.headline}: {exc}")
    sys.exit(getattr(exc, "exit_code", 1))


# Metaflow's top-level options that may come before the command in `python flow.py ...`.
# Those rayflow has no use for are skipped (with their value, for those that take one).
_IGNORED_TOP = {"--no-pylint", "--pylint"}
_IGNORED_TOP_WITH_VALUE = {"--metadata", "--event-logger", "--monitor",
                           "--package-suffixes", "--profile"}
# Metaflow's datastore types: `--datastore local` is rayflow's default; with --datastore-root
# the root says where the datastore is.
_DATASTORE_TYPES = {"local", "s3", "azure", "gs"}
# Top-level options rayflow keeps, and whether each takes a value (--config takes two).
_KEPT_TOP = {"--with": 1, "--datastore": 1, "--datastore-root": 1, "--quiet": 0,
             "--branch": 1, "--production": 0, "--config": 2, "--config-value": 2,
             "--environment": 1}
# Which of the kept options each command understands; the rest are dropped for it.
_RUNNING = {"--with", "--datastore", "--quiet", "--branch", "--production", "--config",
            "--config-value", "--environment"}
_READING = {"--datastore"}
# `python flow.py COMMAND ...` -> how rayflow's command takes the flow: its file, or its name
# in front of a pathspec.
_FILE_COMMANDS = {"run": _RUNNING, "resume": _RUNNING, "spin": _RUNNING, "show": set(),
                  "check": set(), "output-dot": set(), "output-raw": set(),
                  "status": _READING}
_PATHSPEC_COMMANDS = {"logs": _READING, "dump": _READING}


def _leading_options(words: list[str], file: str) -> list[tuple[str, list[str]]]:
    """Pop the options before the command off `words`: [(option, values), ...]."""
    kept: list[tuple[str, list[str]]] = []
    while words and words[0].startswith("--") and words[0] not in ("--help",):
        opt, eq, inline = words.pop(0).partition("=")
        if opt in _IGNORED_TOP:
            continue
        if opt in _IGNORED_TOP_WITH_VALUE:
            if not eq and words:
                words.pop(0)
            continue
        if opt not in _KEPT_TOP:
            _say(f"Unknown option {opt} before the command. Try: python "
                 f"{os.path.basename(file)} --help")
            sys.exit(2)
        count = _KEPT_TOP[opt]
        values = [inline] if eq else []
        while len(values) < count and words:
            values.append(words.pop(0))
        if len(values) < count:
            _say(f"Option {opt} needs {count} value{'s' if count > 1 else ''}.")
            sys.exit(2)
        kept.append((opt, values))
    return _datastore_option(kept)


def _datastore_option(kept: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Metaflow's --datastore TYPE and --datastore-root PATH as rayflow's one --datastore:
    the root is where the flows' folders are (Metaflow's local root, as rayflow's .rayflow
    folder), and `--datastore local` alone is the default."""
    roots = [values for opt, values in kept if opt == "--datastore-root"]
    types = [values[0] for opt, values in kept
             if opt == "--datastore" and values[0] in _DATASTORE_TYPES]
    out = [(opt, values) for opt, values in kept if opt not in ("--datastore", "--datastore-root")
           or opt == "--datastore" and values[0] not in _DATASTORE_TYPES]
    if roots:
        return [(o, v) for o, v in out if o != "--datastore"] + [("--datastore", roots[-1])]
    remote = [t for t in types if t != "local"]
    if remote and not settings.DATASTORE.is_set():
        _say(f"--datastore {remote[-1]} needs where: add --datastore-root (e.g. "
             f"s3://bucket/prefix for s3), or pass the URL as --datastore, or set "
             f"RAYFLOW_DATASTORE.")
        sys.exit(2)
    return out


def _flow_usage(file: str) -> str:
    commands = sorted({*_FILE_COMMANDS, *_PATHSPEC_COMMANDS, "tag", "runs", "card"})
    return (f"Usage: python {os.path.basename(file)} [OPTIONS] COMMAND [ARGS]...\n"
            f"Commands: {', '.join(commands)}.\n"
            f"Each is `rayflow COMMAND` with this flow filled in; see `rayflow COMMAND --help`.")


def flow_command_argv(flow_cls, file: str, argv: list[str]) -> list[str] | None:
    """The `rayflow` words for `python flow.py ARGV` (None: print the usage)."""
    words = list(argv)
    leading = _leading_options(words, file)
    if not words or words[0] in ("--help", "-h", "help"):
        return None
    command, rest = words[0], words[1:]
    name = flow_cls.__name__

    def options(allowed: set[str]) -> list[str]:
        return [w for opt, values in leading if opt in allowed for w in (opt, *values)]

    if command in _FILE_COMMANDS:
        flow_opt = [] if command == "status" else ["--flow", name]
        # The command's own words first, so that a positional one (spin's task, resume's
        # step) is not taken for the value of an option the command does not know.
        return [command, file, *flow_opt, *rest, *options(_FILE_COMMANDS[command])]
    if command in _PATHSPEC_COMMANDS:
        # Metaflow's pathspecs here leave the flow out: run_id/step/task.
        paths = [w if w.startswith("-") or w.startswith(f"{name}/") else f"{name}/{w}"
                 for w in rest[:1]]
        return [command, *paths, *options(_PATHSPEC_COMMANDS[command]), *rest[1:]]
    if command == "card":
        # Metaflow: card [view|get|list] run_id/step/task
        action = [rest.pop(0)] if rest and rest[0] in ("view", "get", "list", "show") else []
        i = next((k for k, w in enumerate(rest) if not w.startswith("-")), None)
        if i is not None and not rest[i].startswith(f"{name}/"):
            rest[i] = f"{name}/{rest[i]}"
        return ["card", *action, *rest, *options(_READING)]
    if command == "tag":
        # Metaflow: tag add|remove|replace|list [--run-id ID] TAGS...
        action, more = (rest[0], rest[1:]) if rest else ("list", [])
        run_id = None
        tags = []
        i = 0
        while i < len(more):
            if more[i] == "--run-id" and i + 1 < len(more):
                run_id = more[i + 1]
                i += 2
                continue
            tags.append(more[i])
            i += 1
        if run_id is None and action == "list":
            # Metaflow: a run id as the argument, else the tags of every run of the flow.
            target = f"{name}/{tags[0]}" if tags else name
            return ["tag", "list", target, *options(_READING)]
        if run_id is None:
            _say(f"Give the run: python {os.path.basename(file)} tag {action} --run-id ID ...")
            sys.exit(2)
        return ["tag", action, f"{name}/{run_id}", *tags, *options(_READING)]
    if command == "runs":
        return ["runs", name, *options(_READING), *rest]
    _say(f"Unknown command {command!r}.\n{_flow_usage(file)}")
    sys.exit(2)


def main_for_flow(flow_cls) -> None:
    """`python flow.py COMMAND ...`: the same commands, with the file and class filled in.
    Flow-level options (--with, --datastore, --quiet, --branch, ...) may come before the
    command, as in Metaflow, or after it."""
    file = os.path.abspath(sys.modules[flow_cls.__module__].__file__)
    words = flow_command_argv(flow_cls, file, sys.argv[1:])
    if words is None:
        if sys.argv[1:]:  # --help: on stdout, as click prints it
            typer.echo(_flow_usage(file))
            sys.exit(0)
        _say(_flow_usage(file))
        sys.exit(2)
    main(words)
    sys.exit(0)


if __name__ == "__main__":
    main()
