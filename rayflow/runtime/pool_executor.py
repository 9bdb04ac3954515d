"""Steps on warm Ray actors, the driver's side: `ActorPoolExecutor`.

A step with `@actor_pool(min=0, max=4, setup=load_model)` runs its tasks (its foreach splits,
or a linear step's one task) on a pool of long-lived Ray actors instead of one Ray task per
batch. Each actor runs `setup` once, when its first task starts, and keeps what it returned
for every later task: `current.actor.state`. A model is loaded once per actor, not once per
split.

The parts:
- `ActorPoolDecorator` (decorators.py) describes the pool;
- the actor and the setup it runs are the worker's side: `actor.py`;
- here, in the driver: `pool_configs` reads the run's pools from its steps' decorators, and
  `ActorPoolExecutor` (a RayExecutor for the other steps) sends each pooled batch to the
  least busy actor of its pool; when every actor has `max_in_flight` batches and the pool is
  below `max`, it starts another actor; an actor idle for `idle_timeout` seconds is ended
  while the pool is above `min`. Several steps share a pool by giving it the same `name`.
  `history` keeps (time, pool, actors) at every change, for the benchmark's scaling plot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidFlowError
from .actor import PoolActor
from .ray_executor import SYSTEM_RETRIES, RayExecutor


@dataclass
class PoolConfig:
    name: str
    min: int
    max: int
    idle_timeout: float
    max_in_flight: int
    options: dict                       # the actors' Ray options, from @resources
    steps: list[str] = field(default_factory=list)


@dataclass
class _Actor:
    handle: Any
    index: int
    in_flight: int = 0
    last_busy: float = field(default_factory=time.time)


class _Pool:
    def __init__(self, cfg: PoolConfig, remote_cls, history: list):
        self.cfg = cfg
        self._cls = remote_cls
        self.actors: list[_Actor] = []
        self.queue: list = []           # batches waiting for a free actor
        self._next_index = 0
        self._history = history

    def _note(self) -> None:
        self._history.append((time.time(), self.cfg.name, len(self.actors)))

    def _start_actor(self) -> _Actor:
        opts = dict(self.cfg.options)
        opts.update(max_restarts=SYSTEM_RETRIES, max_task_retries=SYSTEM_RETRIES,
                    name=None, max_concurrency=1)
        handle = self._cls.options(**opts).remote(self.cfg.name, self._next_index)
        actor = _Actor(handle, self._next_index)
        self._next_index += 1
        self.actors.append(actor)
        self._note()
        return actor

    def free_actor(self) -> _Actor | None:
        free = [a for a in self.actors if a.in_flight < self.cfg.max_in_flight]
        if free:
            return min(free, key=lambda a: a.in_flight)
        if len(self.actors) < self.cfg.max:
            return self._start_actor()
        return None

    def shrink(self, now: float, ray) -> None:
        for actor in list(self.actors):
            if len(self.actors) <= self.cfg.min:
                break
            if actor.in_flight == 0 and not self.queue and \
                    now - actor.last_busy >= self.cfg.idle_timeout:
                self._end(actor, ray)

    def _end(self, actor: _Actor, ray) -> None:
        self.actors.remove(actor)
        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        self._note()

    def close(self, ray) -> None:
        for actor in list(self.actors):
            self._end(actor, ray)


def pool_configs(graph, decos) -> tuple[dict[str, PoolConfig], dict[str, str]]:
    """The run's pools by name, and the pool of each pooled step. Steps that share a pool must
    ask for the same resources."""
    pools: dict[str, PoolConfig] = {}
    step_pool: dict[str, str] = {}
    for node in graph:
        d = decos[node.name]
        pool = d.get("actor_pool")
        if pool is None:
            continue
        res = d.resources
        if res.is_dynamic:
            raise InvalidFlowError(
                f"Step {node.name!r} has @actor_pool and @resources that depend on the split: "
                "a pool's actors have one size. Give @resources fixed values, or drop "
                "@actor_pool to size each split on its own.")
        a = pool.attributes
        name = a["name"] or node.name
        options = res.ray_options(None)
        if d.runtime_env:  # @pypi/@conda: the pool's actors run in the step's environment
            options["runtime_env"] = d.runtime_env
        cfg = PoolConfig(name, int(a["min"]), int(a["max"]), float(a["idle_timeout"]),
                         int(a["max_in_flight"]), options)
        have = pools.get(name)
        if have is not None:
            if have.options != options or (have.min, have.max) != (cfg.min, cfg.max):
                raise InvalidFlowError(
                    f"Steps {', '.join(repr(s) for s in have.steps)} and {node.name!r} share "
                    f"the actor pool "
                    f"{name!r} but ask for different sizes ({have.options} with min/max "
                    f"{have.min}/{have.max}, against {options} with {cfg.min}/{cfg.max}). "
                    "Give them the same @resources and @actor_pool, or pools of their own.")
            cfg = have
        cfg.steps.append(node.name)
        pools[name] = cfg
        step_pool[node.name] = name
    return pools, step_pool


class ActorPoolExecutor(RayExecutor):
    """Pooled steps on actors, every other step as Ray tasks (RayExecutor)."""

    name = "ray+pools"

    def __init__(self, pools: dict[str, PoolConfig], step_pool: dict[str, str],
                 system_retries: int = SYSTEM_RETRIES):
        super().__init__(system_retries)
        cls = self._ray.remote(PoolActor)
        self.history: list = []
        self._pools = {n: _Pool(cfg, cls, self.history) for n, cfg in pools.items()}
        self._step_pool = step_pool
        self._actor_of: dict[Any, tuple[_Pool, _Actor]] = {}
        self._stuck: set = set()
        for pool in self._pools.values():
            for _ in range(pool.cfg.min):
                pool._start_actor()

    @property
    def in_flight(self) -> int:
        return super().in_flight + sum(len(p.queue) for p in self._pools.values())

    def submit(self, batch) -> None:
        name = self._step_pool.get(batch.step)
        if name is None:
            super().submit(batch)
            return
        pool = self._pools[name]
        pool.queue.append(batch)
        self._dispatch(pool)

    def _dispatch(self, pool: _Pool) -> None:
        while pool.queue:
            actor = pool.free_actor()
            if actor is None:
                return
            batch = pool.queue.pop(0)
            out_ref, payload_ref = actor.handle.run.options(num_returns=2).remote(
                self._ctx_ref, batch.specs)
            batch.handle, batch.payload_ref = out_ref, payload_ref
            batch.submitted_at = time.time()
            self._pending[out_ref] = batch
            self._actor_of[out_ref] = (pool, actor)
            actor.in_flight += 1
            actor.last_busy = time.time()

    def _cancel_unschedulable(self) -> None:
        # A pooled batch waits for its actor, not for a node: when no node can hold the actor,
        # the same watch finds the batch, and it fails (an actor task cannot be cancelled).
        by_batch = {id(b): ref for ref, b in self._pending.items()}
        for batch in self._watch.overdue(list(self._pending.values())):
            ref = by_batch[id(batch)]
            if ref in self._actor_of:
                self._stuck.add(ref)
                continue
            self._unschedulable[ref] = self._watch.describe(batch, self._ray)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it may have started meanwhile
                pass

    def wait(self, timeout: float):
        from ..exceptions import SchedulingError
        from .batching import BatchResult
        from .errors import TaskError

        results = super().wait(timeout)
        for ref in list(self._stuck):
            batch = self._pending.pop(ref, None)
            if batch is not None:
                pool, actor = self._actor_of.pop(ref)
                pool._end(actor, self._ray)
                results.append(BatchResult(batch, None, error=TaskError.from_exception(
                    SchedulingError(self._watch.describe(batch, self._ray), step=batch.step))))
        self._stuck = set()
        now = time.time()
        for res in results:
            ref = res.batch.handle
            where = self._actor_of.pop(ref, None)
            if where is None:
                continue
            pool, actor = where
            actor.in_flight = max(0, actor.in_flight - 1)
            actor.last_busy = now
            if res.outcomes is None and actor in pool.actors:
                # The whole batch failed outside the step (the actor died past its restarts,
                # say): this actor serves no more; the pool starts another when it needs one.
                pool._end(actor, self._ray)
        for pool in self._pools.values():
            self._dispatch(pool)
            pool.shrink(now, self._ray)
        return results

    def pool_sizes(self) -> dict[str, int]:
        return {n: len(p.actors) for n, p in self._pools.items()}

    def shutdown(self) -> None:
        super().shutdown()
        self.close()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.queue.clear()
            pool.close(self._ray)
