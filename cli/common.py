"""Plain functions behind the commands: resolve the datastore, load a flow, run it."""

from __future__ import annotations

import sys
import time

# Ray forwards the workers' output to this console about half a second late. The run knows how
# many lines its tasks printed; the summary waits until that many have come through (at most
# this long: Ray may drop or merge lines, e.g. with RAY_DEDUP_LOGS=1).
LOG_DRAIN_SECONDS = 1.5


def _datastore(url: str | None) -> str:
    """The datastore URL a command uses: --datastore, else RAYFLOW_DATASTORE, else the
    nearest .rayflow folder (`rayflow.datastore.resolve_datastore_url`, the resolver the
    runtime, the workers and the client use too)."""
    from rayflow.datastore import resolve_datastore_url

    return resolve_datastore_url(url)


def run_options(settings, resume=None, namespace=None):
    """RunOptions for `run` and `resume`, from the options they share."""
    from rayflow.runtime.run_loop import RunOptions

    return RunOptions(
        datastore_url=_datastore(settings.datastore), address=settings.address,
        tags=list(settings.tag or []), with_decorators=list(settings.with_ or []),
        executor=settings.executor, max_in_flight=settings.max_workers,
        progress=not settings.quiet, resume=resume, run_id_file=settings.run_id_file,
        runner_attribute_file=settings.runner_attribute_file, branch=settings.branch,
        production=settings.production or None, max_num_splits=settings.max_num_splits,
        max_log_bytes=None if settings.max_log_size is None
        else int(settings.max_log_size * 1024 * 1024),
        namespace=namespace, warm=not settings.no_warm)


def display_path(path: str) -> str:
    from rayflow.runtime.flowfile import display_path as shown

    return shown(path)


def _load(file: str, flow_name: str | None):
    from rayflow.runtime.flowfile import load_flow

    return load_flow(file, flow_name)


def _execute(loaded, params, opts) -> None:
    from rayflow.report.failures import format_duration
    from rayflow.runtime.errors import raise_for_failures
    from rayflow.runtime.run_loop import RunLoop

    runner = RunLoop(loaded, params, opts)
    t0 = time.time()
    _say(f"Running {loaded.name} from {display_path(loaded.file)} "
         f"(datastore {opts.datastore_url})")
    from rayflow.unsupported import run_notes

    for note in run_notes(runner.flow.cls, runner.decos):  # what a decorator does not do here
        _say(note)
    if opts.executor != "ray":
        summary = runner.run()
    else:
        _leave_ray_at_exit()
        # Let the last step's lines land before the summary, so it is the last thing printed.
        with ForwardedLines() as forwarded:
            summary = runner.run()
            forwarded.wait_for(summary.printed, LOG_DRAIN_SECONDS)
    if summary.report and not summary.successful:
        _say(f"Report: {summary.report}")
    raise_for_failures(summary)
    cloned = f", {summary.tasks_cloned} cloned" if summary.tasks_cloned else ""
    # The run's one duration (its tasks' span), as `rayflow runs` and the report show it;
    # with the set-up (loading the flow, joining Ray) when that took a moment.
    setup = time.time() - t0 - (summary.wall_seconds or 0.0)
    extra = f"; {format_duration(setup)} more to set up" if setup >= 1 else ""
    _say(f"Done: {summary.pathspec} finished in {format_duration(summary.wall_seconds)} "
         f"({summary.tasks_done} tasks{cloned}{extra}).")
    if summary.report:
        _say(f"Report: {summary.report}")


def _leave_ray_at_exit() -> None:
    """Ray's own exit hook sleeps 0.5 s for late log lines before it disconnects (and stops an
    embedded Ray). A run has already waited for its tasks' lines (ForwardedLines), so this
    hook, registered after Ray's and so run before it, leaves Ray without that sleep; Ray's
    hook then finds nothing left to do."""
    import atexit

    import ray

    def leave() -> None:
        if ray.is_initialized():
            ray.shutdown()

    atexit.register(leave)


class ForwardedLines:
    """Counts the task lines (those with a `[run/step/task] ` prefix) that reach this process's
    stdout and stderr while the block runs: Ray's log thread prints each forwarded line with
    one write."""

    def __init__(self):
        self.count = 0

    def __enter__(self) -> "ForwardedLines":
        self._real = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = (_Counting(stream, self) for stream in self._real)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout, sys.stderr = self._real

    def wait_for(self, lines: int, limit: float) -> None:
        deadline = time.monotonic() + limit
        while self.count < lines and time.monotonic() < deadline:
            time.sleep(0.02)


class _Counting:
    def __init__(self, real, counter: ForwardedLines):
        self._real, self._counter = real, counter

    def write(self, text):
        if text[:1] == "[" and "/" in text[:200] and "] " in text[:200]:
            self._counter.count += 1
        return self._real.write(text)

    def __getattr__(self, name):
        return getattr(self._real, name)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


