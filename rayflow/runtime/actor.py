"""The pool actor's side of `@actor_pool`: what runs in the actor's process.

`PoolActor` is the actor (wrapped with ray.remote by `pool_executor.ActorPoolExecutor`, in the
driver): it runs batches with the same `worker.execute_batch` a Ray task runs, so records,
lineage, resume, @retry, @catch and @timeout keep their meaning. Ray restarts an actor whose
process died (`max_restarts`) and runs the batch it held again (`max_task_retries`); the
restarted actor runs setup again.

`ensure_setup` is called by `ActorPoolDecorator.task_pre_step` (decorators.py) in whatever
process runs the task: on a pool actor, the pool's setup runs once per actor; with the inline
executor or `rayflow spin`, once per process. A setup that raises fails the task with the
setup's own traceback, as the step's code would (and @retry, @catch apply); the next task on
that actor tries setup again. `current.actor` is the `ActorInfo` it returns.
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidFlowError
from .isolation import kept_for_the_process

# Set by PoolActor in its process: which pool and which actor of it this process is.
_HERE: dict = {"pool": None, "index": None, "actor_id": None}
_STATES: dict[tuple, "_Setup"] = {}  # (pool, setup function) -> what it made here


@dataclass
class _Setup:
    state: Any
    seconds: float
    tasks: int = 0


@dataclass
class ActorInfo:
    """`current.actor` in a pooled step: which actor serves the task, and what its setup made.

    - `pool`: the pool's name; `index`: the actor's number in the pool (None outside an actor,
      e.g. with the inline executor); `actor_id`: Ray's id of the actor; `pid`: its process;
    - `state`: what `setup` returned (None without a setup);
    - `setup_seconds`: how long setup took; `tasks_before`: tasks this actor ran before."""

    pool: str
    index: int | None
    actor_id: str | None
    pid: int
    state: Any
    setup_seconds: float
    tasks_before: int


def resolve_setup(setup):
    """The setup callable: a function, or "module:function"."""
    if setup is None or callable(setup):
        return setup
    if isinstance(setup, str) and ":" in setup:
        import importlib

        module, _, name = setup.partition(":")
        return getattr(importlib.import_module(module), name)
    raise InvalidFlowError(f"@actor_pool(setup={setup!r}): setup is a function (or "
                           "'module:function') that returns what the pool's tasks share.")


def ensure_setup(pool: str, setup) -> ActorInfo:
    """Run the pool's setup in this process if it has not run yet; the task's ActorInfo."""
    fn = resolve_setup(setup)
    key = (pool, getattr(fn, "__module__", None), getattr(fn, "__qualname__", None))
    done = _STATES.get(key)
    if done is None:
        t0 = time.perf_counter()
        state = None
        if fn is not None:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.default is inspect.Parameter.empty and
                      p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            with kept_for_the_process(getattr(fn, "__globals__", None)):
                state = fn(_HERE["index"]) if params else fn()
        done = _STATES[key] = _Setup(state, time.perf_counter() - t0)
    info = ActorInfo(pool, _HERE["index"], _HERE["actor_id"], os.getpid(), done.state,
                     done.seconds, done.tasks)
    done.tasks += 1
    return info


class PoolActor:
    """One actor of a pool (wrapped with ray.remote by the executor)."""

    def __init__(self, pool: str, index: int):
        import ray

        _HERE.update(pool=pool, index=index,
                     actor_id=ray.get_runtime_context().get_actor_id())

    def run(self, ctx, specs):
        from .worker import execute_batch

        return execute_batch(ctx, specs)

    def ready(self) -> int:
        return os.getpid()
