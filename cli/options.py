"""Shared option and argument types of the rayflow commands (Typer `Annotated` aliases)."""

from typing import Annotated

import typer

FlowFile = Annotated[str, typer.Argument(help="Path to the flow's Python file.")]
DatastoreOpt = Annotated[str | None, typer.Option(
    "--datastore", envvar="RAYFLOW_DATASTORE",
    help="Where checkpoints go: a local folder (default ./.rayflow) or s3://bucket/prefix.")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", envvar="RAY_ADDRESS",
    help="Ray cluster to join (e.g. auto, or ray://host:10001). Default: start an embedded Ray.")]
FlowNameOpt = Annotated[str | None, typer.Option(
    "--flow", help="The flow class to use when the file defines several.")]
TagOpt = Annotated[list[str] | None, typer.Option(
    "--tag", help="Tag the run (repeatable).")]
WithOpt = Annotated[list[str] | None, typer.Option(
    "--with", help="Add a decorator to every step, e.g. --with retry or "
                   "--with retry:times=2,minutes_between_retries=0 (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress lines.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
MaxWorkersOpt = Annotated[int | None, typer.Option(
    "--max-workers", help="Most Ray tasks in flight at once (default: twice the CPUs).")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="ray (default) or inline (run every task in this process, for debugging).")]
NamespaceOpt = Annotated[str | None, typer.Option(
    "--namespace", help="Namespace for looking up runs (default user:<you>).")]

RUN_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
