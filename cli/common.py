"""Plain functions behind the commands: resolve the datastore, load a flow, run it."""

from __future__ import annotations

import os
import sys
import time

LOG_DRAIN_SECONDS = 0.8


def _datastore(url: str | None) -> str:
    from rayflow.datastore import default_datastore_url

    if url in (None, "", "local"):
        return default_datastore_url()
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url))
    return url


def display_path(path: str) -> str:
    from rayflow.runtime.flowfile import display_path as shown

    return shown(path)


def _load(file: str, flow_name: str | None):
    from rayflow.runtime.flowfile import load_flow

    return load_flow(file, flow_name)


def _execute(loaded, params, opts, run_id_file=None, runner_cls=None) -> None:
    from rayflow.runtime.runner import Runner, raise_for_failures

    runner = (runner_cls or Runner)(loaded, params, opts)
    t0 = time.time()
    _say(f"Running {loaded.name} from {display_path(loaded.file)} "
         f"(datastore {opts.datastore_url})")
    summary = runner.run()
    if opts.executor == "ray":
        # Ray forwards workers' output to this console about half a second late; let the last
        # step's lines land before the summary, so the summary is the last thing printed.
        time.sleep(LOG_DRAIN_SECONDS)
    if run_id_file:
        with open(run_id_file, "w") as fh:
            fh.write(summary.run_id)
    raise_for_failures(summary)
    cloned = f", {summary.tasks_cloned} cloned" if summary.tasks_cloned else ""
    _say(f"Done: {summary.pathspec} finished in {time.time() - t0:.1f} s "
         f"({summary.tasks_done} tasks{cloned}).")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


