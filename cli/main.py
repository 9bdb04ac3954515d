"""The `rayflow` command: a thin Typer layer over plain functions in rayflow.

User errors (RayflowException) print one message, without a traceback, and exit 1. Anything
else is a rayflow bug and keeps its traceback. `python flow.py run` lands here too, through
`main_for_flow`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from rayflow.exceptions import RayflowException

from .common import _execute, _load, _say, display_path, run_options
from .options import RUN_SETTINGS, FlowFile, FlowNameOpt, JsonOpt, RunSettings, with_run_options
from .params import describe_parameters, split_flow_args

app = typer.Typer(
    name="rayflow", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Run Metaflow-style flows on Ray. `rayflow run flow.py` starts an embedded Ray; "
         "`--address` joins a cluster.")



@app.command(context_settings=RUN_SETTINGS)
@with_run_options
def run(ctx: typer.Context, file: FlowFile,
        max_num_splits: Annotated[int | None, typer.Option(
            "--max-num-splits", help="Accepted for Metaflow compatibility; rayflow has no cap.",
            hidden=True)] = None, *, settings: RunSettings):
    """Run a flow. Flow parameters follow as --name value (see `rayflow show FILE`)."""
    from rayflow.parameters import resolve_parameters

    loaded = _load(file, settings.flow)
    params = resolve_parameters(loaded.cls, split_flow_args(loaded.cls, list(ctx.args)))
    _execute(loaded, params, run_options(settings))


@app.command()
def show(file: FlowFile, flow: FlowNameOpt = None, json_: JsonOpt = False):
    """Describe the flow's steps and transitions (no Ray is started)."""
    from rayflow.runtime.flowfile import load_flow

    loaded = load_flow(file, flow, lint_it=False)
    if json_:
        typer.echo(json.dumps(loaded.graph.to_dict(), indent=2))
        return
    typer.echo(loaded.graph.describe())
    typer.echo("\nParameters:\n" + describe_parameters(loaded.cls))


@app.command()
def check(file: FlowFile, flow: FlowNameOpt = None):
    """Lint the flow: structure, transitions, joins. Exits 1 on the first problem."""
    loaded = _load(file, flow)
    typer.echo(f"Flow {loaded.name} looks good: {len(loaded.graph.steps)} steps, "
               f"{display_path(loaded.file)}.")


def _register_more_commands() -> None:
    from . import inspect_cmds

    inspect_cmds.register(app)


_register_more_commands()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line and exit 1."""
    import click

    args = argv if argv is not None else sys.argv[1:]
    try:
        app(args=argv, standalone_mode=False, prog_name="rayflow")
        _flow_parameter_help(args)
    except RayflowException as exc:
        _fail(exc)
    except click.exceptions.Exit as exc:
        _flow_parameter_help(args)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _say("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        _say("Interrupted. The run can be continued with `rayflow resume`.")
        sys.exit(130)


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
        loaded = load_flow(files[0], None, lint_it=False)
    except RayflowException:
        return
    typer.echo(f"\nParameters of {loaded.name} (pass as --name value):\n"
               f"{describe_parameters(loaded.cls)}")


def _fail(exc: RayflowException) -> None:
    _say(f"{exc.headline}: {exc}")
    sys.exit(1)


# Metaflow's top-level options that may come before the command in `python flow.py ...`.
_IGNORED_TOP = {"--no-pylint", "--pylint", "--quiet"}
_IGNORED_TOP_WITH_VALUE = {"--metadata", "--environment", "--event-logger", "--monitor",
                           "--datastore-root", "--package-suffixes"}
_FLOW_COMMANDS = {"run", "resume", "show", "check"}


def main_for_flow(flow_cls) -> None:
    """`python flow.py run ...`: the same commands, with the file and class filled in."""
    file = os.path.abspath(sys.modules[flow_cls.__module__].__file__)
    words, leading = list(sys.argv[1:]), []
    while words and words[0].startswith("--") and words[0] not in ("--help",):
        opt, eq, _ = words.pop(0).partition("=")
        if opt in _IGNORED_TOP:
            continue
        if opt in _IGNORED_TOP_WITH_VALUE:
            if not eq and words:
                words.pop(0)
            continue
        if opt == "--with":
            leading += ["--with", _ if eq else words.pop(0)]
            continue
        if opt == "--datastore":
            value = _ if eq else words.pop(0)
            if value not in ("local",):
                leading += ["--datastore", value]
            continue
        _say(f"Unknown option {opt} before the command. Try: python "
             f"{os.path.basename(file)} run --help")
        sys.exit(2)
    if not words or words[0] in ("--help", "-h", "help"):
        _say(f"Usage: python {os.path.basename(file)} [run|resume|show|check] [OPTIONS]\n"
             f"Same as `rayflow COMMAND {os.path.basename(file)}`.")
        sys.exit(0 if words else 2)
    command, rest = words[0], words[1:]
    if command not in _FLOW_COMMANDS:
        _say(f"Unknown command {command!r}. Use one of: {', '.join(sorted(_FLOW_COMMANDS))}.")
        sys.exit(2)
    main([command, file, "--flow", flow_cls.__name__, *leading, *rest])
    sys.exit(0)


if __name__ == "__main__":
    main()
