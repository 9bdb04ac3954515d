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
  below `max`, it starts another actor (unless other tasks of the run wait for CPUs or GPUs:
  then the pool makes do with the actors it has). Several steps share a pool by giving it
  the same `name`.

A pool shares the machine with the rest of the run. Its actors end:
- as soon as no task still to run (running, queued, waiting out a retry) can reach a step
  that uses the pool (`pools.pools_ahead`): the step after the last pooled task finds the
  CPUs free at once, whatever `idle_timeout` says;
- when they are idle while other tasks of the run wait for the CPUs or GPUs they hold
  (`pools.Resources`): they give way at once, even below `min`;
- after `idle_timeout` seconds idle, while the pool is above `min`.
An actor that dies is recorded as dead, its batches run again on another actor (up to the
system retries), and the pool starts a new one when it needs one. `log` (pools.PoolLog)
records every actor requested, up, down and dead; `history` the pools' live sizes over time.
"""

from __future__ import annotations

import time
from typing import Any

from .actor import PoolActor
from .pools import PoolConfig, PoolLog, Resources, _Actor, _Pool, pool_configs, pools_ahead
from .ray_executor import SYSTEM_RETRIES, RayExecutor

__all__ = ["ActorPoolExecutor", "PoolConfig", "pool_configs"]

# Ray's errors for an actor whose process is gone (and that Ray does not restart).
_ACTOR_GONE = ("ActorDiedError", "ActorUnavailableError", "RayActorError")
QUEUE_AHEAD = 4  # batches a pool's queue holds per actor before its feeders wait
GIVE_WAY_EVERY = 0.25  # seconds between two looks at what the run's tasks wait for
# An actor idle this long gives way to tasks waiting for what it holds: not at once, so that a
# pool fed step by step (decode -> infer) keeps its actor between two batches.
GIVE_WAY_AFTER = 1.0


class ActorPoolExecutor(RayExecutor):
    """Pooled steps on actors, every other step as Ray tasks (RayExecutor)."""

    name = "ray+pools"

    def __init__(self, pools: dict[str, PoolConfig], step_pool: dict[str, str],
                 system_retries: int = SYSTEM_RETRIES, graph=None):
        super().__init__(system_retries)
        cls = self._ray.remote(PoolActor)
        self.log = PoolLog()
        self.history = self.log.history
        self._pools = {n: _Pool(cfg, cls, self.log) for n, cfg in pools.items()}
        self._step_pool = step_pool
        self._every = set(pools)
        self._here, self._after = pools_ahead(graph, step_pool) if graph is not None else \
            ({}, {})
        # step -> the pools its next steps use: a pool its running tasks feed keeps an actor.
        self._feeds = {n.name: {step_pool[t] for t in n.out_funcs if t in step_pool}
                       for n in (graph or ())}
        self._actor_of: dict[Any, tuple[_Pool, _Actor]] = {}
        self._stuck: set = set()
        self._stuck_queued: list = []      # (pool, batch): no node can hold its actors
        self._queued = lambda: ()          # the run loop's steps not yet submitted
        self._note = lambda step, why: None  # tells the progress why a step waits
        self._waits: dict[str, str] = {}
        self._short = False                # other tasks wait for CPUs or GPUs
        self._looked = 0.0
        for pool in self._pools.values():
            for _ in range(pool.cfg.min):
                pool.start_actor()

    def watch(self, queued, note) -> None:
        self._queued, self._note = queued, note

    @property
    def in_flight(self) -> int:
        """Batches running, and those waiting in a pool's queue. A short queue counts as one
        (the run is not done): the steps that feed the pool go on while it works through
        it; a queue longer than QUEUE_AHEAD per actor counts whole, and holds them back."""
        queued = 0
        for p in self._pools.values():
            n = len(p.queue)
            queued += n if n > QUEUE_AHEAD * p.cfg.max * p.cfg.max_in_flight else min(n, 1)
        return super().in_flight + queued

    def submit(self, batch) -> None:
        name = self._step_pool.get(batch.step)
        if name is None:
            super().submit(batch)
            # A pool this step feeds starts its first actor now, so that the actor's start
            # and setup overlap this step's tasks instead of following them.
            for fed in self._feeds.get(batch.step, ()):
                if not self._pools[fed].actors:
                    self._pools[fed].start_actor()
            return
        pool = self._pools[name]
        pool.queue.append(batch)
        self._dispatch(pool)

    def _dispatch(self, pool: _Pool) -> None:
        while pool.queue:
            actor = pool.free_actor(may_grow=lambda p=pool: self._may_grow(p))
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

    def _may_grow(self, pool: _Pool) -> bool:
        """A pool grows only into CPUs and GPUs that no task of the run waits for."""
        tasks = [b.options for r, b in self._pending.items() if r not in self._actor_of]
        if not tasks:
            return True
        try:
            return Resources(self._ray, list(self._pools.values()), tasks).fits(pool.demand())
        except Exception:  # noqa: BLE001 - only an optimisation
            return not self._short

    def _cancel_unschedulable(self) -> None:
        # A pooled batch waits for an actor, not for a node: when no node can hold the pool's
        # actors, the same watch finds the batch, and it fails.
        by_batch = {id(b): ref for ref, b in self._pending.items()}
        queued = {id(b): p for p in self._pools.values() for b in p.queue}
        for batch in self._watch.overdue([*self._pending.values(),
                                          *(b for p in self._pools.values() for b in p.queue)]):
            ref = by_batch.get(id(batch))
            if ref is None:
                self._stuck_queued.append((queued[id(batch)], batch))
                continue
            if ref in self._actor_of:
                self._stuck.add(ref)
                continue
            self._unschedulable[ref] = self._watch.describe(batch, self._ray)
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - it may have started meanwhile
                pass

    def wait(self, timeout: float):
        if not self._pending and any(p.queue for p in self._pools.values()):
            self._wait_for_actors(timeout)
        results = self._unstick(super().wait(timeout))
        self._see_actors_up()
        now = time.time()
        out = []
        for res in results:
            where = self._actor_of.pop(res.batch.handle, None)
            if where is None or not self._settle(res, *where, now):
                out.append(res)
        self._end_unneeded(out)
        self._give_way(now)
        fed = self._fed()
        for pool in self._pools.values():
            self._dispatch(pool)
            pool.shrink(now, self._ray, keep=1 if pool.cfg.name in fed else 0)
        return out

    def _fed(self) -> set[str]:
        """The pools that the steps of the tasks running now feed."""
        return set().union(*(self._feeds.get(b.step, set()) for r, b in self._pending.items()
                             if r not in self._actor_of))

    def _unstick(self, results: list) -> list:
        from ..exceptions import SchedulingError
        from .batching import BatchResult
        from .errors import TaskError

        for ref in list(self._stuck):
            batch = self._pending.pop(ref, None)
            if batch is not None:
                pool, actor = self._actor_of.pop(ref)
                pool.end(actor, self._ray, "no node can hold it")
                results.append(BatchResult(batch, None, error=TaskError.from_exception(
                    SchedulingError(self._watch.describe(batch, self._ray), step=batch.step))))
        self._stuck = set()
        for pool, batch in self._stuck_queued:
            if batch in pool.queue:
                pool.queue.remove(batch)
                for actor in [a for a in pool.actors if not a.up]:
                    pool.end(actor, self._ray, "no node can hold it")
                results.append(BatchResult(batch, None, error=TaskError.from_exception(
                    SchedulingError(self._watch.describe(batch, self._ray), step=batch.step))))
        self._stuck_queued = []
        return results

    def _settle(self, res, pool: _Pool, actor: _Actor, now: float) -> bool:
        """A pooled batch came back: free its actor. True when the batch was taken back to
        run again (its actor died before it finished)."""
        actor.in_flight = max(0, actor.in_flight - 1)
        actor.last_busy = now
        if res.outcomes is not None:
            if not actor.up:  # it ran a batch: its process is up, whatever `ready` says
                pool.is_up(actor, actor.pid or 0)
            return False
        error = res.error
        gone = error is not None and error.type.rsplit(".", 1)[-1] in _ACTOR_GONE
        if gone:
            pool.died(actor, error.message.splitlines()[0] if error.message else error.type)
        else:
            # The whole batch failed outside the step: this actor serves no more; the pool
            # starts another when it needs one.
            pool.end(actor, self._ray, f"its batch failed: {error.type if error else '?'}")
        if gone and res.batch.system_attempts < self.system_retries:
            res.batch.system_attempts += 1
            pool.queue.insert(0, res.batch)  # run again, on another actor
            return True
        return False

    def _wait_for_actors(self, timeout: float) -> None:
        """Nothing runs, batches wait for actors that are starting: wait for one to be up."""
        self._cancel_unschedulable()
        starting = [a.ready_ref for p in self._pools.values() for a in p.actors
                    if not a.up and a.ready_ref is not None]
        if starting:
            self._ray.wait(starting, num_returns=1, timeout=timeout)
        else:
            time.sleep(min(timeout, 0.05))

    def _see_actors_up(self) -> None:
        """Actors whose `ready` call answered are up; one whose call failed died starting."""
        waiting = {a.ready_ref: (p, a) for p in self._pools.values() for a in p.actors
                   if not a.up and a.ready_ref is not None}
        if not waiting:
            return
        done, _ = self._ray.wait(list(waiting), num_returns=len(waiting), timeout=0)
        for ref in done:
            pool, actor = waiting[ref]
            actor.ready_ref = None
            try:
                pool.is_up(actor, int(self._ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - it died before it was up
                if actor.in_flight == 0:
                    pool.died(actor, str(exc).splitlines()[0] if str(exc) else repr(exc))

    def _end_unneeded(self, results: list) -> None:
        """End the actors of every pool that no task still to run can reach."""
        live = [p for p in self._pools.values() if p.actors and not p.queue and
                not any(a.in_flight for a in p.actors)]
        if not live or not self._here:
            return
        needed: set[str] = set()
        for step in (*(b.step for b in self._pending.values()), *self._queued()):
            needed |= self._here.get(step, self._every)
        for res in results:
            failed = res.outcomes is None or not all(o is not None and o.ok
                                                      for o in res.outcomes)
            needed |= (self._here if failed else self._after).get(res.batch.step, self._every)
        for pool in live:
            if pool.cfg.name not in needed:
                pool.close(self._ray, "no step still to run uses it")

    def _give_way(self, now: float) -> None:
        """Idle actors end when other tasks of the run wait for the CPUs or GPUs they hold;
        each step that waits says why."""
        if now - self._looked < GIVE_WAY_EVERY:
            return
        self._looked = now
        tasks = [b for r, b in self._pending.items() if r not in self._actor_of]
        if not tasks or not any(p.actors for p in self._pools.values()):
            self._short = False
            self._say_waits({})
            return
        pools = list(self._pools.values())
        try:
            res = Resources(self._ray, pools, [b.options for b in tasks])
        except Exception:  # noqa: BLE001 - only an optimisation
            return
        self._short = bool(res.short)
        fed = self._fed()
        for r, lack in res.short.items():
            for pool in pools:
                keep = 1 if pool.cfg.name in fed else 0
                for actor in pool.idle():
                    if lack <= 1e-6 or len(pool.actors) <= keep:
                        break
                    held = pool.demand().get(r, 0.0)
                    if held > 0 and now - actor.last_busy >= GIVE_WAY_AFTER:
                        pool.end(actor, self._ray, f"gave way to tasks waiting for {r}")
                        lack -= held
        why = res.why()
        self._say_waits({b.step: why for b in tasks} if why else {})

    def _say_waits(self, waits: dict[str, str]) -> None:
        for step in set(self._waits) | set(waits):
            if self._waits.get(step) != waits.get(step):
                self._note(step, waits.get(step))
        self._waits = waits

    def pool_sizes(self) -> dict[str, int]:
        return {n: len(p.actors) for n, p in self._pools.items()}

    def shutdown(self) -> None:
        super().shutdown()
        self.close()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.queue.clear()
            pool.close(self._ray, "the run ended")
