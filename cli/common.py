"""Plain functions behind the commands: resolve the datastore, load a flow, run it."""

from __future__ import annotations

import sys
import time

LOG_DRAIN_SECONDS = 0.8


def _datastore(url: str | None) -> str:
    """The datastore URL a command uses: --datastore, else RAYFLOW_DATASTORE, else the
    nearest .rayflow folder (see `rayflow.datastore.resolve_datastore_url`)."""
    from rayflow.datastore import default_datastore_url, resolve_datastore_url

    if url in (None, "", "local"):
        return default_datastore_url()
    return resolve_datastore_url(url)


def run_options(settings, resume=None):
    """RunOptions for `run` and `resume`, from the options they share."""
    from rayflow.runtime.runner import RunOptions

    return RunOptions(
        datastore_url=_datastore(settings.datastore), address=settings.address,
        tags=list(settings.tag or []), with_decorators=list(settings.with_ or []),
        executor=settings.executor, max_in_flight=settings.max_workers,
        progress=not settings.quiet, resume=resume, run_id_file=settings.run_id_file,
        runner_attribute_file=settings.runner_attribute_file, branch=settings.branch,
        production=settings.production or None)


def display_path(path: str) -> str:
    from rayflow.runtime.flowfile import display_path as shown

    return shown(path)


def _load(file: str, flow_name: str | None):
    from rayflow.runtime.flowfile import load_flow

    return load_flow(file, flow_name)


def _execute(loaded, params, opts) -> None:
    from rayflow.runtime.errors import raise_for_failures
    from rayflow.runtime.runner import Runner

    runner = Runner(loaded, params, opts)
    t0 = time.time()
    _say(f"Running {loaded.name} from {display_path(loaded.file)} "
         f"(datastore {opts.datastore_url})")
    summary = runner.run()
    if opts.executor == "ray":
        # Ray forwards workers' output to this console about half a second late; let the last
        # step's lines land before the summary, so the summary is the last thing printed.
        time.sleep(LOG_DRAIN_SECONDS)
    if summary.report and not summary.successful:
        _say(f"Report: {summary.report}")
    raise_for_failures(summary)
    cloned = f", {summary.tasks_cloned} cloned" if summary.tasks_cloned else ""
    _say(f"Done: {summary.pathspec} finished in {time.time() - t0:.1f} s "
         f"({summary.tasks_done} tasks{cloned}).")
    if summary.report:
        _say(f"Report: {summary.report}")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


