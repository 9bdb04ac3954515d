"""Each task starts from the process state a fresh process would have, in a reused worker.

Metaflow runs every task in a new process: a step that sets a module global, an environment
variable or the working directory leaves nothing behind for the next task. rayflow's workers
are reused (a warm worker, a batch of foreach splits in one process), so `TaskIsolation` puts
back, around every task of a batch:

- the flow module's globals as they were right after its import (`module_baseline`, taken
  once per worker): names the task rebound are bound again to their first value, names it
  added are removed. A value changed in place (a module-level list appended to) is not undone:
  that would take a deep copy of every global before each task (slow, and impossible for
  locks, open files or modules), or importing the module again per task;
- os.environ, the working directory and sys.argv as the batch started, restored after each
  task, with `sys.argv[0]` the flow file, as Metaflow's `python flow.py step ...` has it.

An @actor_pool's setup runs once per process, for all the tasks the actor serves: the globals
it binds in the flow module are kept for the process (`kept_for_the_process`).

It is cheap enough to run for each of a 100,000-split batch: an unchanged environment and
module cost two dictionary comparisons (see `isolation_cost_us`).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

_BASELINES: dict[int, dict] = {}  # id(module namespace) -> its baseline (the module lives on)


def module_baseline(module) -> dict | None:
    """The flow module's namespace right after its import: what every task starts from."""
    if module is None:
        return None
    baseline = _BASELINES[id(module.__dict__)] = dict(module.__dict__)
    return baseline


@contextmanager
def kept_for_the_process(namespace: dict | None):
    """What the block binds in `namespace` (a flow module's globals) stays bound for the
    process's next tasks: it joins the module's baseline."""
    before = dict(namespace) if namespace is not None else None
    yield
    baseline = _BASELINES.get(id(namespace)) if namespace is not None else None
    if baseline is not None:
        missing = object()
        baseline.update({k: v for k, v in namespace.items() if before.get(k, missing) is not v})


def _environ_data():
    """os.environ's own (encoded) mapping, compared in C; a copy of it where that is absent."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else dict(os.environ)


class TaskIsolation:
    """The state of one batch's process that each of its tasks starts from."""

    def __init__(self, module=None, baseline: dict | None = None):
        self.globals = module.__dict__ if module is not None and baseline is not None else None
        self.baseline = baseline
        self.environ = dict(_environ_data())
        self.cwd = _getcwd()
        self.argv = list(sys.argv)
        flow_file = getattr(module, "__file__", None) if module is not None else None
        self.task_argv = [flow_file] if flow_file else list(self.argv)

    def before_task(self) -> None:
        if self.globals is not None:
            restore_namespace(self.globals, self.baseline)
        sys.argv = list(self.task_argv)

    def after_task(self) -> None:
        restore_environ(self.environ)
        if self.cwd is not None and _getcwd() != self.cwd:
            try:
                os.chdir(self.cwd)
            except OSError:
                pass
        sys.argv = self.argv


def restore_namespace(namespace: dict, baseline: dict) -> None:
    """Bind every name of `baseline` to its value again, and drop names added since. Never
    empties the namespace meanwhile (another thread may be reading it)."""
    try:
        # In C, and by identity first: a value compared with __eq__ is one the task rebound.
        if namespace == baseline:
            return
    except Exception:  # noqa: BLE001 - an __eq__ that fails (numpy arrays): restore anyway
        pass
    namespace.update(baseline)
    for name in namespace.keys() - baseline.keys():
        namespace.pop(name, None)


def restore_environ(saved: dict) -> None:
    """Make os.environ what it was when `saved` (a copy of `_environ_data()`) was taken,
    through os.environ itself so that the process's C environment follows."""
    data = _environ_data()
    if data == saved:
        return
    env = os.environ
    decode = getattr(env, "decodekey", None) if data is getattr(env, "_data", None) else None
    unwrap = getattr(env, "decodevalue", None) if decode is not None else None
    for key in [k for k in data if k not in saved]:
        env.pop(decode(key) if decode else key, None)
    for key, value in saved.items():
        if data.get(key) != value:
            env[decode(key) if decode else key] = unwrap(value) if unwrap else value


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed under us
        return None


def isolation_cost_us(tasks: int = 100_000, globals_count: int = 200) -> float:
    """Microseconds `before_task` + `after_task` take per task, for a module of
    `globals_count` names and nothing changed (the common case): a quick measurement for the
    docs and tests, not used at run time."""
    import time
    import types

    module = types.ModuleType("isolation_probe")
    for i in range(globals_count):
        setattr(module, f"name{i}", i)
    iso = TaskIsolation(module, module_baseline(module))
    started = time.perf_counter()
    for _ in range(tasks):
        iso.before_task()
        iso.after_task()
    return (time.perf_counter() - started) / tasks * 1e6
