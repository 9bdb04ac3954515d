"""The driver's book of a run's actor pools: their settings, their actors, and what happened to
them. `pool_executor.ActorPoolExecutor` decides; this module keeps the state and the rules.

- `pool_configs` reads the run's pools from its steps' decorators;
- `_Pool` holds one pool's actors (`_Actor`: started, up once its `ready` call answered,
  busy with batches) and the batches waiting for one;
- `PoolLog` records what happened to the pools: `events`, one (time, pool, actor, what,
  detail) per actor requested, up (its process answered), down (ended by the pool, and why) or
  died; and `history`, (time, pool, actors up) at every change of a pool's live size;
- `pools_ahead` is what lets a pool end early: for each step, the pools that it or a step after
  it uses. Once no task still to run can reach a step of a pool, its actors end at once;
- `Resources` is the arithmetic behind "idle actors give way": what the run's tasks wait for,
  and which pool holds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InvalidFlowError
from .cluster import demands_of

# Ray's own default for a task without num_cpus: one CPU while it runs.
_TASK_DEFAULT = {"CPU": 1.0}
WATCHED = ("CPU", "GPU")  # the resources an idle actor gives back when others wait for them


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
    ready_ref: Any = None
    up: bool = False
    pid: int | None = None
    in_flight: int = 0
    last_busy: float = field(default_factory=time.time)


class PoolLog:
    """What happened to the run's pools (see the module's docstring)."""

    def __init__(self):
        self.history: list = []   # (time, pool, actors up)
        self.events: list = []    # (time, pool, actor index, what, detail)

    def note(self, pool: str, index: int, what: str, up: int | None, detail: str = "") -> None:
        now = time.time()
        self.events.append((now, pool, index, what, detail))
        if up is not None:
            self.history.append((now, pool, up))


class _Pool:
    def __init__(self, cfg: PoolConfig, remote_cls, log: PoolLog):
        self.cfg = cfg
        self._cls = remote_cls
        self.actors: list[_Actor] = []
        self.queue: list = []           # batches waiting for a free actor
        self._next_index = 0
        self._log = log

    @property
    def up(self) -> int:
        return sum(1 for a in self.actors if a.up)

    def demand(self) -> dict[str, float]:
        return demands_of(self.cfg.options)

    def start_actor(self) -> _Actor:
        opts = dict(self.cfg.options)
        # No restarts by Ray: a dead actor is seen dying (its batches fail with
        # ActorDiedError), recorded, and replaced by the executor, which runs its batches
        # again on another actor (as Ray's own task retries would).
        opts.update(max_restarts=0, max_task_retries=0, name=None, max_concurrency=1)
        handle = self._cls.options(**opts).remote(self.cfg.name, self._next_index)
        actor = _Actor(handle, self._next_index, ready_ref=handle.ready.remote())
        self._next_index += 1
        self.actors.append(actor)
        self._log.note(self.cfg.name, actor.index, "requested", None)
        return actor

    def free_actor(self, may_grow=lambda: True) -> _Actor | None:
        """The least busy actor that is up and has room for a batch. None when there is
        none: then one more actor is started if every actor is busy, fewer are starting than
        batches wait, the pool is below `max` and `may_grow()` (or it has no actor at all). A
        batch never waits on an actor still starting while another one is free."""
        free = [a for a in self.actors if a.up and a.in_flight < self.cfg.max_in_flight]
        if free:
            return min(free, key=lambda a: a.in_flight)
        starting = sum(1 for a in self.actors if not a.up)
        if starting < len(self.queue) and len(self.actors) < self.cfg.max and \
                (not self.actors or may_grow()):
            self.start_actor()
        return None

    def idle(self) -> list[_Actor]:
        return [a for a in self.actors if a.in_flight == 0] if not self.queue else []

    def is_up(self, actor: _Actor, pid: int) -> None:
        if actor in self.actors and not actor.up:
            actor.up, actor.pid, actor.last_busy = True, pid, time.time()
            self._log.note(self.cfg.name, actor.index, "up", self.up, f"pid {pid}")

    def shrink(self, now: float, ray, keep: int = 0) -> None:
        """End actors idle past idle_timeout, down to `min` (and to `keep`: 1 for a pool
        that a running step feeds)."""
        for actor in self.idle():
            if len(self.actors) <= max(self.cfg.min, keep):
                break
            if actor.up and now - actor.last_busy >= self.cfg.idle_timeout:
                self.end(actor, ray, f"idle for {self.cfg.idle_timeout:g} s")

    def end(self, actor: _Actor, ray, why: str) -> None:
        if actor not in self.actors:
            return
        self.actors.remove(actor)
        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        self._log.note(self.cfg.name, actor.index, "down", self.up if actor.up else None, why)

    def died(self, actor: _Actor, why: str) -> None:
        if actor not in self.actors:
            return
        self.actors.remove(actor)
        self._log.note(self.cfg.name, actor.index, "died", self.up if actor.up else None,
                       why)

    def close(self, ray, why: str) -> None:
        for actor in list(self.actors):
            self.end(actor, ray, why)


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


def pools_ahead(graph, step_pool: dict[str, str]) -> tuple[dict, dict]:
    """(step -> the pools it or any step after it uses, step -> the pools a step after it
    uses). A foreach inside a foreach, a shared pool, a loop (a recursive switch) all follow
    from the graph's edges."""
    after: dict[str, set[str]] = {}
    for node in graph:
        seen: set[str] = set()
        todo = list(node.out_funcs)
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(graph[s].out_funcs)
        after[node.name] = {step_pool[s] for s in seen if s in step_pool}
    here = {s: after[s] | ({step_pool[s]} if s in step_pool else set()) for s in after}
    return here, after


def task_demand(options: dict) -> dict[str, float]:
    return demands_of(options) or dict(_TASK_DEFAULT)


def _amount(n: float, name: str) -> str:
    return f"{n:g} {name}" + ("s" if n != 1 else "")


class Resources:
    """One look at the cluster's CPUs and GPUs against what the run's tasks and actors need:
    `short` is, per resource, how much the run's waiting tasks lack."""

    def __init__(self, ray, pools: list[_Pool], task_options: list[dict]):
        total, free = ray.cluster_resources(), ray.available_resources()
        self.total = {r: float(total.get(r, 0.0)) for r in WATCHED}
        self.free = {r: float(free.get(r, 0.0)) for r in WATCHED}
        self.held = {p.cfg.name: {r: p.demand().get(r, 0.0) * len(p.actors) for r in WATCHED}
                     for p in pools}
        self._steps = {p.cfg.name: "/".join(p.cfg.steps) or p.cfg.name for p in pools}
        wants = [task_demand(o) for o in task_options]
        self.short: dict[str, float] = {}
        self.spare: dict[str, float] = {}  # free once every waiting task has what it needs
        for r in WATCHED:
            need = sum(w.get(r, 0.0) for w in wants) + sum(h[r] for h in self.held.values())
            used = self.total[r] - self.free[r]
            self.spare[r] = self.free[r] - max(0.0, need - used)
            smallest = min((w[r] for w in wants if w.get(r)), default=None)
            if smallest is not None and need - used > 1e-6 and self.free[r] < smallest:
                self.short[r] = need - used

    def fits(self, demand: dict[str, float]) -> bool:
        """Whether one more actor of `demand` fits beside every task that waits."""
        return all(self.spare.get(r, 0.0) >= demand.get(r, 0.0) - 1e-6 for r in WATCHED)

    def why(self) -> str | None:
        """'waiting for 1 CPU: infer's pool holds 2 of 2', when a pool holds what is lacking."""
        for r, lack in self.short.items():
            name, held = max(((n, h[r]) for n, h in self.held.items()),
                             key=lambda x: x[1], default=(None, 0.0))
            if name is not None and held > 0:
                return (f"waiting for {_amount(lack, r)}: {self._steps[name]}'s pool holds "
                        f"{held:g} of {self.total[r]:g}")
        return None
