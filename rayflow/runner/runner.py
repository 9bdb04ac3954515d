"""`Runner`: run or resume a flow file from Python, in a subprocess through the `rayflow` CLI,
with Metaflow's names (`run`, `resume`, `async_run`, `async_resume`, `cleanup`).

Keyword arguments become command-line options. Those given to `Runner(...)` are the options
Metaflow puts before the command (`datastore=`, `decospecs=` for `--with`, `quiet=`, and
rayflow's `address=`, `executor=`); those given to `run(...)` are run options (`tags=`,
`max_workers=`, `run_id_file=`) and, for everything else, the flow's own parameters.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ..exceptions import RayflowException
from .process import (
    CommandProcess,
    ExecutingRun,
    ExecutingTask,
    async_wait_for_file,
    new_folder,
    wait_for_file,
)

# Runner(...) keyword -> CLI option ("" : a flag).
_TOP_LEVEL = {"datastore": "--datastore", "address": "--address", "executor": "--executor",
              "quiet": "--quiet", "decospecs": "--with", "with_": "--with", "flow": "--flow",
              "max_workers": "--max-workers", "branch": "--branch",
              "production": "--production", "config": "--config",
              "config_value": "--config-value"}
# Options that take a name and a value: [(name, value), ...] or {name: value}.
_PAIR_OPTIONS = {"--config", "--config-value"}
# Metaflow's top-level options with no meaning here (metadata service, environments, ...).
_IGNORED_TOP_LEVEL = {"metadata", "environment", "event_logger", "monitor", "pylint",
                      "package_suffixes"}
# run(...) / resume(...) keywords that are run options, not flow parameters.
_RUN_OPTIONS = {"tags": "--tag", "tag": "--tag", "max_workers": "--max-workers",
                "run_id_file": "--run-id-file", "max_num_splits": "--max-num-splits",
                "max_log_size": "--max-log-size",
                "namespace": "--namespace", "user_namespace": "--namespace"}
_RESUME_OPTIONS = {**_RUN_OPTIONS, "origin_run_id": "--origin-run-id",
                   "clone_changed": "--clone-changed"}
_IGNORED_RUN = {"runner_attribute_file"}
_SPIN_OPTIONS = {"artifacts_module": "--artifacts-module", "run_id_file": "--run-id-file",
                 "namespace": "--namespace"}


class RunnerError(RayflowException):
    headline = "Runner error"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _options(kwargs: dict[str, Any], known: dict[str, str], ignored: set[str],
             params_allowed: bool, where: str) -> list[str]:
    words: list[str] = []
    for key, value in kwargs.items():
        if key in ignored or value is None:
            continue
        option = known.get(key)
        if option is None:
            if not params_allowed:
                raise RunnerError(
                    f"Unknown argument {key!r} for {where}: it takes "
                    f"{', '.join(sorted(known))}; flow parameters go to run(...).")
            words.append(f"--{key}={_value(value)}")  # a flow parameter, by its own name
            continue
        if option in _PAIR_OPTIONS:
            words += _pairs(option, value, where)
        elif option in ("--quiet", "--production", "--clone-changed"):
            words += [option] if value else []
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                words += [option, _value(item)]
        else:
            words += [option, _value(value)]
    return words


def _multiple_parameters(flow_file: str) -> set[str]:
    """The keyword spellings of the parameters declared with multiple=True in the flow file's
    flows. The file is imported, as Metaflow's Runner does, only when a list is given."""
    from ..parameters import flow_parameters
    from ..runtime.flowfile import import_flow_file

    try:
        module = import_flow_file(flow_file)
    except Exception:  # noqa: BLE001 - the run itself will report what is wrong with it
        return set()
    from ..flowspec import FlowSpec

    names: set[str] = set()
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, FlowSpec):
            names |= {spelling for p in flow_parameters(obj) if p.multiple
                      for spelling in (p.name, p.name.replace("-", "_"))}
    return names


def _pairs(option: str, value: Any, where: str) -> list[str]:
    """`config_value=[("cfg", {"x": 1})]` (or {"cfg": {...}}) -> --config-value cfg '{"x": 1}'."""
    pairs = value.items() if isinstance(value, dict) else value
    words: list[str] = []
    try:
        for name, item in pairs:
            words += [option, str(name), _value(item)]
    except (TypeError, ValueError):
        raise RunnerError(f"{where}: {option[2:].replace('-', '_')}= takes (name, value) pairs "
                          f"or a dict of them, e.g. [('config', {{'x': 1}})], not "
                          f"{value!r}.") from None
    return words


class Runner:
    """`with Runner("flow.py", datastore=...).run(alpha=1) as running: running.run.data...`

    `show_output` echoes the run's stdout and stderr live (they are kept either way, in
    `running.stdout` and `running.stderr`); `env` adds environment variables for the run;
    `cwd` is the folder it runs in (default: this process's); `file_read_timeout` bounds how
    long a run may take to report its run id."""

    def __init__(self, flow_file: str, show_output: bool = True, profile: str | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 file_read_timeout: int = 3600, **kwargs: Any):
        self.flow_file = os.path.abspath(flow_file)
        if not os.path.isfile(self.flow_file):
            raise RunnerError(f"Flow file {flow_file!r} does not exist (looked at "
                              f"{self.flow_file}). Pass the path of the flow's Python file.")
        self.show_output = show_output
        self.env_vars = {**os.environ, **(env or {})}
        if profile:
            self.env_vars["METAFLOW_PROFILE"] = profile
        self.cwd = cwd or os.getcwd()
        self.file_read_timeout = file_read_timeout
        if kwargs.get("datastore_root"):  # Metaflow's datastore root: rayflow's --datastore
            kwargs["datastore"] = kwargs.pop("datastore_root")
        kwargs.pop("datastore_root", None)
        self.top_level = _options(kwargs, _TOP_LEVEL, _IGNORED_TOP_LEVEL, False, "Runner(...)")
        self._commands: list[CommandProcess] = []

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc) -> None:
        self.cleanup()

    # -- commands ----------------------------------------------------------------------------
    def _start(self, command: str, words: list[str], show_output: bool
               ) -> tuple[CommandProcess, str]:
        folder = new_folder()
        attribute_file = os.path.join(folder, "runner-attributes.json")
        # The command's own words first: a positional one (spin's task, resume's step) must
        # not land after an option the command does not know (--config-value NAME VALUE).
        argv = [sys.executable, "-m", "rayflow_cli.main", command, self.flow_file,
                *words, *self.top_level, "--runner-attribute-file", attribute_file]
        proc = CommandProcess(argv, self.env_vars, self.cwd, show_output, folder)
        self._commands.append(proc)
        return proc, attribute_file

    def _executing(self, proc: CommandProcess, text: str | None) -> ExecutingRun:
        from ..client import Run

        if text is None:
            proc.sync_wait()
            message = self._no_run_message(proc)
            proc.cleanup()
            raise RunnerError(message)
        info = json.loads(text)
        run = Run(f"{info['flow_name']}/{info['run_id']}", datastore=info["datastore"],
                  _namespace_check=False)
        return ExecutingRun(self, proc, run)

    def _no_run_message(self, proc: CommandProcess) -> str:
        if proc.timeout:
            return (f"{os.path.basename(self.flow_file)} did not start a run within "
                    f"{self.file_read_timeout} s; it was ended. Raise file_read_timeout if "
                    "the flow takes longer to start.")
        err = proc.read("stderr").strip().splitlines()
        last = err[-1] if err else "(no output)"
        return (f"{os.path.basename(self.flow_file)} exited with status {proc.returncode} "
                f"before a run started: {last}")

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow and wait for it to end. Keywords: the flow's parameters, and `tags`,
        `max_workers`, `run_id_file`."""
        return self._blocking("run", self._run_words(kwargs, "run(...)"))

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume a run and wait for it to end. Keywords: `origin_run_id`, `step_to_rerun`
        (or `step`), `tags`, `max_workers`."""
        words = self._resume_words(kwargs)
        return self._blocking("resume", words)

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        """Start the run and return as soon as it has a run id; `await running.wait()` or
        `async for _, line in running.stream_log("stdout")` follow it."""
        return await self._started("run", self._run_words(kwargs, "async_run(...)"))

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        words = self._resume_words(kwargs)
        return await self._started("resume", words)

    def _run_words(self, kwargs: dict[str, Any], where: str) -> list[str]:
        """The words of a run: a list given for a parameter declared with multiple=True
        becomes one option per item (as Metaflow's Runner does); any other list is JSON."""
        kwargs = dict(kwargs)
        listed = [k for k, v in kwargs.items()
                  if k not in _RUN_OPTIONS and isinstance(v, (list, tuple))]
        repeated: list[str] = []
        if listed:
            multiple = _multiple_parameters(self.flow_file)
            for key in listed:
                if key in multiple:
                    repeated += [f"--{key}={_value(item)}" for item in kwargs.pop(key)]
        return _options(kwargs, _RUN_OPTIONS, _IGNORED_RUN, True, where) + repeated

    def _blocking(self, command: str, words: list[str]) -> ExecutingRun:
        proc, attribute_file = self._start(command, words, self.show_output)
        text = wait_for_file(attribute_file, proc, self.file_read_timeout)
        proc.sync_wait()
        return self._executing(proc, text)

    async def _started(self, command: str, words: list[str]) -> ExecutingRun:
        proc, attribute_file = self._start(command, words, False)
        text = await async_wait_for_file(attribute_file, proc, self.file_read_timeout)
        return self._executing(proc, text)

    def spin(self, pathspec: str, **kwargs: Any) -> ExecutingTask:
        """Run one past task again from its recorded inputs (`rayflow spin`) and wait.
        Keywords: `artifacts_module`, `skip_decorators`, `persist`."""
        proc, attribute_file = self._start("spin", self._spin_words(pathspec, kwargs),
                                           self.show_output)
        text = wait_for_file(attribute_file, proc, self.file_read_timeout)
        proc.sync_wait()
        return self._executing_task(proc, text)

    async def async_spin(self, pathspec: str, **kwargs: Any) -> ExecutingTask:
        proc, attribute_file = self._start("spin", self._spin_words(pathspec, kwargs), False)
        text = await async_wait_for_file(attribute_file, proc, self.file_read_timeout)
        return self._executing_task(proc, text)

    def _spin_words(self, pathspec: str, kwargs: dict[str, Any]) -> list[str]:
        kwargs = dict(kwargs)
        flags = []
        if kwargs.pop("skip_decorators", False):
            flags.append("--skip-decorators")
        if kwargs.pop("persist", True) is False:
            flags.append("--no-persist")
        return [pathspec, *flags,
                *_options(kwargs, _SPIN_OPTIONS, _IGNORED_RUN, False, "spin(...)")]

    def _executing_task(self, proc: CommandProcess, text: str | None) -> ExecutingTask:
        from ..client import Task

        if text is None:
            proc.sync_wait()
            message = self._no_run_message(proc)
            proc.cleanup()
            raise RunnerError(message)
        info = json.loads(text)
        if proc.returncode is None:
            proc.sync_wait()
        if proc.returncode != 0:
            # As Metaflow's Runner.spin: a spin that failed raises, with what it printed.
            err = proc.read("stderr").strip().splitlines()
            proc.cleanup()
            raise RunnerError(f"spin of {os.path.basename(self.flow_file)} failed (exit "
                              f"status {proc.returncode}):\n" + "\n".join(err[-30:]))
        task = Task(f"{info['flow_name']}/{info['run_id']}/{info['step_name']}/"
                    f"{info['task_id']}", datastore=info["datastore"], _namespace_check=False)
        return ExecutingTask(self, proc, task)

    def _resume_words(self, kwargs: dict[str, Any]) -> list[str]:
        kwargs = dict(kwargs)
        step = kwargs.pop("step_to_rerun", None) or kwargs.pop("step", None)
        words = _options(kwargs, _RESUME_OPTIONS, _IGNORED_RUN, False, "resume(...)")
        return ([step] if step else []) + words

    def cleanup(self) -> None:
        """End what is still running and remove the logs and files the runs kept."""
        for proc in self._commands:
            proc.cleanup()
        self._commands = []
