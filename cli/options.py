"""Shared option and argument types of the rayflow commands (Typer `Annotated` aliases)."""

import copy
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

FlowFile = Annotated[str, typer.Argument(metavar="FILE", help="Path to the flow's Python file.")]
DatastoreOpt = Annotated[str | None, typer.Option(
    "--datastore",
    help="Where checkpoints go: a local folder, `local` (the nearest .rayflow folder, else "
         "./.rayflow) or s3://bucket/prefix. Default: RAYFLOW_DATASTORE, else `local`.")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", envvar="RAY_ADDRESS",
    help="Ray cluster to join (e.g. auto, or ray://host:10001). Default: the warm local Ray "
         "(started by the first run, reused by the next).")]
FlowNameOpt = Annotated[str | None, typer.Option(
    "--flow", help="The flow class to use when the file defines several.")]
TagOpt = Annotated[list[str] | None, typer.Option(
    "--tag", help="Tag the run (repeatable).")]
WithOpt = Annotated[list[str] | None, typer.Option(
    "--with", help="Add a decorator to every step, e.g. --with retry or "
                   "--with retry:times=2,minutes_between_retries=0 (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress lines.")]
NoWarmOpt = Annotated[bool, typer.Option(
    "--no-warm",
    help="Run on an embedded Ray of this run's own, ended with it, instead of the warm local "
         "Ray that runs keep between them (started by the first run; `rayflow down` ends it).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
MaxWorkersOpt = Annotated[int | None, typer.Option(
    "--max-workers", help="Most Ray tasks in flight at once (default: twice the CPUs).")]
MaxNumSplitsOpt = Annotated[int | None, typer.Option(
    "--max-num-splits", min=1,
    help="Fail a foreach that makes more splits than this, as Metaflow does (rayflow has no "
         "cap unless this is given).")]
MaxLogSizeOpt = Annotated[float | None, typer.Option(
    "--max-log-size", min=0,
    help="Keep at most this many MB of each task's stdout and of its stderr, as Metaflow "
         "does (rayflow keeps all of it unless this is given).")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="ray (default) or inline (run every task in this process, for debugging).")]
NamespaceOpt = Annotated[str | None, typer.Option(
    "--namespace", help="Namespace for looking up runs (default user:<you>).")]

ENVIRONMENTS = ("local", "pypi", "conda", "uv")


def _environment(value: str | None) -> str | None:
    if value is not None and value not in ENVIRONMENTS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(ENVIRONMENTS)}.")
    return value


EnvironmentOpt = Annotated[str | None, typer.Option(
    "--environment", callback=_environment,
    help="Metaflow's --environment: accepted. rayflow builds every @pypi and @conda step's "
         "environment through Ray whichever is given (Metaflow needs pypi or conda for them).")]

RUN_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
RunIdFileOpt = Annotated[str | None, typer.Option(
    "--run-id-file", help="Write the run id to this file as soon as the run has one.")]
BranchOpt = Annotated[str | None, typer.Option(
    "--branch", envvar="METAFLOW_BRANCH",
    help="@project flows: run on this branch (test.<branch>, or prod.<branch> with "
         "--production). Default: user.<you>.")]
ProductionOpt = Annotated[bool, typer.Option(
    "--production", help="@project flows: run on the production branch.")]
RunnerAttributeFileOpt = Annotated[str | None, typer.Option(
    "--runner-attribute-file", hidden=True,
    help="Write {flow_name, run_id, datastore} as JSON here (used by rayflow.Runner).")]


@dataclass
class RunSettings:
    """The options `run` and `resume` share, declared once (`_shared_run_options`)."""

    datastore: str | None = None
    address: str | None = None
    tag: list[str] | None = None
    with_: list[str] | None = None
    flow: str | None = None
    max_workers: int | None = None
    max_num_splits: int | None = None
    max_log_size: float | None = None
    quiet: bool = False
    executor: str = "ray"
    run_id_file: str | None = None
    runner_attribute_file: str | None = None
    branch: str | None = None
    production: bool = False
    no_warm: bool = False
    environment: str | None = None


def _shared_run_options(datastore: DatastoreOpt = None, address: AddressOpt = None,
                        tag: TagOpt = None, with_: WithOpt = None, flow: FlowNameOpt = None,
                        max_workers: MaxWorkersOpt = None,
                        max_num_splits: MaxNumSplitsOpt = None,
                        max_log_size: MaxLogSizeOpt = None, quiet: QuietOpt = False,
                        executor: ExecutorOpt = "ray", run_id_file: RunIdFileOpt = None,
                        runner_attribute_file: RunnerAttributeFileOpt = None,
                        branch: BranchOpt = None, production: ProductionOpt = False,
                        no_warm: NoWarmOpt = False,
                        environment: EnvironmentOpt = None):
    """Only its signature is used: the options of every command that runs a flow."""


# What means nothing for one task run again in this process (`rayflow spin`): accepted, so
# `python flow.py spin` and scripts may pass them as to run, but not listed in its --help.
NOT_FOR_ONE_TASK = ("address", "tag", "max_workers", "max_num_splits", "max_log_size",
                    "executor", "quiet")


def with_run_options(command: Callable | None = None, *, hidden: tuple[str, ...] = ()):
    """Give `command(ctx, file, ..., settings: RunSettings)` the shared run options as well:
    Typer sees one signature with both, and the command receives the shared ones gathered in
    a RunSettings. `hidden`: shared options the command accepts but leaves out of --help."""
    if command is None:
        return functools.partial(with_run_options, hidden=hidden)
    own = inspect.signature(command, eval_str=True)
    shared = inspect.signature(_shared_run_options, eval_str=True)
    shared_names = list(shared.parameters)
    params = [p for name, p in own.parameters.items() if name != "settings"]
    params += [_hide(p) if p.name in hidden else p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in shared.parameters.values()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        settings = RunSettings(**{name: kwargs.pop(name) for name in shared_names})
        return command(*args, settings=settings, **kwargs)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the merged signature, not the command's own
    return wrapper


def _hide(param: inspect.Parameter) -> inspect.Parameter:
    """`param` (an Annotated Typer option) as a keyword-only option hidden from --help."""
    base, *infos = typing.get_args(param.annotation)
    shown = [copy.copy(info) for info in infos]
    for info in shown:
        info.hidden = True
    return param.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                         annotation=Annotated[(base, *shown)])
