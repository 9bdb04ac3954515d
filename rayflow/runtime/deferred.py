"""The executor of a run, and joining Ray only once a task must run (`DeferredExecutor`).

`executor_for(loop)` joins Ray (`ray_session.connect`) and makes the run's executor, before
the run record is written, so a refused or unreachable cluster leaves no run behind. A resume
whose origin run finished, with nothing asked to run again, normally clones every task: it
gets a `DeferredExecutor`, which joins Ray the first time a task has to run after all (an
artifact of the origin found damaged), and never otherwise, so such a resume costs no Ray
start. A foreach's variable is cut into chunks in the object store (`slice`) only when one of
its splits is submitted (`LazySlices`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from .executor import Executor
from .executors import make_executor
from .spec import RunContext


def executor_for(loop) -> Executor:
    """The executor of `loop` (a RunLoop): Ray joined now, or when first needed for a resume
    that should clone every task. Each @pypi/@conda step's environment is resolved first,
    before Ray starts (runtime/environments.py)."""
    from .environments import attach_environments

    attach_environments(loop.flow.cls, loop.graph, loop.decos, loop.opts.executor,
                        loop.progress.say)
    if loop.opts.executor != "ray":
        return make_executor(loop.opts.executor, loop.graph, loop.decos)
    from .pool_executor import pool_configs

    pool_configs(loop.graph, loop.decos)  # a bad pool is a message before Ray starts
    if loop.cloner is not None and loop.cloner.may_clone_all():
        return DeferredExecutor(lambda ctx: _join(loop, ctx), _fit_to(loop))
    executor, _ = _join(loop, None)
    return executor


def _join(loop, ctx: RunContext | None) -> tuple[Executor, RunContext | None]:
    """Join Ray for `loop`, and its context as the Ray joined needs it (None: not made yet)."""
    import ray

    from .cluster import check_datastore_fits_cluster, single_machine_capacity
    from .ray_session import connect

    loop.session = connect(loop.opts.address, loop.flow.file,
                           say=loop.progress.say if loop.opts.progress else None,
                           warm=loop.opts.warm)
    check_datastore_fits_cluster(ray, loop.ds.url)
    loop.machine = single_machine_capacity(ray, loop.session.kind)
    if ctx is not None:
        ctx = loop.ctx = session_context(ctx, loop.session)
    return make_executor("ray", loop.graph, loop.decos), ctx


def session_context(ctx: RunContext, session) -> RunContext:
    """The run's context as the Ray of `session` needs it: on a cluster the flow file is in
    the shipped working directory; a warm Ray's workers take the run's folder."""
    flow_file = os.path.basename(ctx.flow_file) if session.kind == "cluster" else ctx.flow_file
    return dataclasses.replace(ctx, flow_file=flow_file, driver_cwd=session.driver_cwd,
                               env_unset=session.env_unset)


def _fit_to(loop) -> Callable:
    def fit(batch) -> None:
        if loop.machine is not None:
            loop._fit_machine(batch)
    return fit


class DeferredExecutor(Executor):
    """Stands for the run's executor until a batch must run: `join(ctx)` then makes the real
    one (and the context it needs), which is started and takes every call from then on."""

    name = "deferred"

    def __init__(self, join: Callable[[RunContext], tuple[Executor, RunContext]],
                 fit: Callable[[Any], None] | None = None):
        self._join = join
        self._fit = fit
        self._real: Executor | None = None
        self._ctx: RunContext | None = None

    @property
    def joined(self) -> bool:
        return self._real is not None

    def real(self) -> Executor:
        if self._real is None:
            real, ctx = self._join(self._ctx)
            real.start(ctx)
            self._real = real
        return self._real

    def start(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def submit(self, batch) -> None:
        joined = self.joined
        real = self.real()
        if not joined and self._fit is not None:
            self._fit(batch)  # made before the machine was known
        real.submit(batch)

    def wait(self, timeout: float) -> list:
        return self._real.wait(timeout) if self._real is not None else []

    @property
    def in_flight(self) -> int:
        return self._real.in_flight if self._real is not None else 0

    def slice(self, loc, chunk: int, num_chunks: int) -> Sequence:
        if self._real is not None:
            return self._real.slice(loc, chunk, num_chunks)
        return LazySlices(self, loc, chunk, num_chunks)

    def put(self, value: Any) -> Any:
        return self.real().put(value)

    def total_cpus(self) -> int:
        return self._real.total_cpus() if self._real is not None else (os.cpu_count() or 1)

    def shutdown(self) -> None:
        if self._real is not None:
            self._real.shutdown()

    def close(self) -> None:
        if self._real is not None:
            self._real.close()

    def cancel_where(self, predicate) -> None:
        if self._real is not None:
            self._real.cancel_where(predicate)

    @property
    def history(self):
        return getattr(self._real, "history", None)


class LazySlices(Sequence):
    """A foreach variable's chunk refs, cut the first time one is read (a split submitted)."""

    def __init__(self, owner: DeferredExecutor, loc, chunk: int, num_chunks: int):
        self._owner, self._args, self._len = owner, (loc, chunk, num_chunks), num_chunks
        self._refs: list | None = None

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):
        if self._refs is None:
            self._refs = list(self._owner.real().slice(*self._args))
        return self._refs[i]
