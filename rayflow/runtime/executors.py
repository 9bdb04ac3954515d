"""Choosing the executor of a run (the driver's side): `make_executor`.

Its own module, so that `executor.py`, the interface, imports none of its implementations.
"""

from __future__ import annotations

from .executor import Executor


def make_executor(name: str, graph=None, decos=None) -> Executor:
    """The executor called `name` ("ray" or "inline"). Ray must be connected for "ray"; a
    flow with @actor_pool steps gets the actor-pool executor (pool_executor.py), which runs
    its other steps as RayExecutor does."""
    if name == "inline":
        from .inline_executor import InlineExecutor

        return InlineExecutor()
    if name == "ray":
        from .ray_executor import RayExecutor

        if graph is not None and decos is not None:
            from .pool_executor import ActorPoolExecutor, pool_configs

            pools, step_pool = pool_configs(graph, decos)
            executor = (ActorPoolExecutor(pools, step_pool, graph=graph) if pools
                        else RayExecutor())
            envs = [d.runtime_env for s, d in decos.items() if d.runtime_env and s not in step_pool]
            executor.environments = [e for i, e in enumerate(envs) if e not in envs[:i]]
            return executor
        return RayExecutor()
    from ..exceptions import RayflowException

    raise RayflowException(f"Unknown executor {name!r}: use --executor ray or --executor inline.")
