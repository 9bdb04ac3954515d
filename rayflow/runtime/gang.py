"""Gangs: the N tasks of a @parallel step (`self.next(self.train, num_parallel=N)`), in the
driver, and what each member sees in its worker.

A gang is scheduled as one: a Ray placement group with one bundle per member, each sized by
the step's @resources (CPU, GPU, memory), placed with the step's strategy (SPREAD unless
@parallel(strategy=) or RAYFLOW_GANG_STRATEGY say otherwise). Only once every bundle is
placed does any member start, each pinned to its own bundle; a group that cannot be placed
within RAYFLOW_GANG_START_TIMEOUT seconds fails the step with one message naming what it
asked for. Before the members start, one tiny task on the control member's bundle (member 0)
reads its node's IP and picks a free port there: MASTER_ADDR and MASTER_PORT of every member.

A gang lives or dies as one. A member that fails (its step raised, it timed out, its worker
died) fails the gang: the other members are cancelled by their task refs (force: their
workers are killed) and the placement group is removed, so no member is left running. The
members' results reach the scheduler only once all N have succeeded, so the join sees one
whole gang. @retry runs the whole gang again, all N members with the next attempt number; a
gang whose members died on every attempt runs @catch's fallback attempt as a whole too. On
resume a gang is cloned only when every member finished in the origin run, else it runs
again as a whole.

In the worker (`member_context`): `current.parallel`, `current.is_parallel` and the
environment torchrun would set, for the duration of the task.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import SchedulingError
from .errors import ErrorKind, TaskError

CONTROL_TASK_TYPE = "control_task"  # Metaflow's CONTROL_TASK_TAG


# ------------------------------------------------------------------------------ the worker
def member_info(index: int, size: int, control_task_id: str, main_ip: str, port: int,
                local_rank: int = 0, local_size: int = 1, group_rank: int | None = None,
                num_groups: int | None = None) -> dict:
    """What member `index` of a gang of `size` is told (TaskSpec.gang)."""
    env = {
        "MASTER_ADDR": main_ip, "MASTER_PORT": str(port), "WORLD_SIZE": str(size),
        "RANK": str(index), "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_size),
        "GROUP_RANK": str(index if group_rank is None else group_rank),
        "NODE_RANK": str(index if group_rank is None else group_rank),
        "GROUP_WORLD_SIZE": str(size if num_groups is None else num_groups),
        "MF_PARALLEL_MAIN_IP": main_ip, "MF_PARALLEL_NUM_NODES": str(size),
        "MF_PARALLEL_NODE_INDEX": str(index), "MF_PARALLEL_CONTROL_TASK_ID": control_task_id,
    }
    return {"node_index": index, "num_nodes": size, "main_ip": main_ip,
            "control_task_id": control_task_id, "env": env}


@contextlib.contextmanager
def member_context(info: dict, tctx):
    """Inside a member's task: `current.parallel`, `current.is_parallel` and its
    environment, put back afterwards (a worker process serves other tasks next)."""
    from ..parallel import Parallel
    from .worker import scoped_environ

    tctx.parallel = Parallel(info["main_ip"], info["num_nodes"], info["node_index"],
                             info["control_task_id"])
    tctx.is_parallel = True
    with scoped_environ(info["env"]):
        yield


def gang_metadata(info: dict | None) -> dict | None:
    """A member's task metadata, as Metaflow writes it: the gang's size, and which member is
    the control task."""
    if info is None:
        return None
    out = {"parallel-world-size": str(info["num_nodes"])}
    if info["node_index"] == 0:
        out["internal_task_type"] = CONTROL_TASK_TYPE
    return out


def control_address() -> tuple[str, int]:
    """This node's IP and a port free on it now: run on the control member's bundle."""
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - not in a Ray worker (the inline executor)
        ip = "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return ip, sock.getsockname()[1]


# ------------------------------------------------------------------------------ the driver
@dataclass
class Gang:
    step: str
    tasks: list            # scheduler.ReadyTask, member i = split i
    attempt: int
    fallback: bool = False
    options: dict = field(default_factory=dict)   # one member's Ray options
    strategy: str = "SPREAD"
    pg: Any = None
    ready_ref: Any = None
    deadline: float = 0.0
    outstanding: int = 0
    done: dict = field(default_factory=dict)      # task id -> (task, outcome, payload ref)
    failure: tuple | None = None                  # (task, attempt, outcome, error), the first
    handles: list = field(default_factory=list)   # the members' Ray task handles
    ran: list = field(default_factory=list)       # outcomes of members that ran, for the rows


class GangRunner:
    """The run loop's gangs: placing them, starting their members, and taking their results
    until each gang has succeeded or failed as a whole. `loop` is the RunLoop."""

    def __init__(self, loop):
        self.loop = loop
        self.placing: list[Gang] = []
        self.waiting: list[tuple[float, list, int, bool]] = []   # @retry's delay
        self.running: dict[int, Gang] = {}
        # Placement groups of gangs that succeeded, removed once their members' Ray tasks
        # have returned (removing it kills the workers, which Ray reports as deaths).
        self.retiring: list[tuple[Any, list, float]] = []

    @property
    def busy(self) -> bool:
        return bool(self.placing or self.waiting or self.running)

    # ------------------------------------------------------------------------- starting
    def takes(self, fan) -> bool:
        """Launch a @parallel step's Fanout as one gang (or clone it whole); False for any
        other Fanout."""
        loop = self.loop
        if not loop.graph[fan.step].parallel_step:
            return False
        tasks = fan.take(fan.remaining)
        cloner = loop.cloner
        if cloner is not None and all(cloner.can_clone(t) for t in tasks):
            for task in tasks:
                loop._cloned(task)
            return True
        self.launch(tasks, 0)
        return True

    def launch(self, tasks: list, attempt: int, fallback: bool = False) -> None:
        loop = self.loop
        step = tasks[0].step
        decos = loop.decos[step]
        from ..parallel import gang_strategy

        options = loop.batches._options_for(tasks[0], decos)
        options = self._fit_machine(step, options, len(tasks))
        gang = Gang(step, tasks, attempt, fallback, options, gang_strategy(decos))
        if getattr(loop.executor, "name", "") == "inline":
            self._start(gang, control_address())
            return
        from ray.util import placement_group

        from .. import settings

        gang.pg = placement_group([bundle_of(options)] * len(tasks), strategy=gang.strategy,
                                  name=f"rayflow:{loop.run_id}:{step}:{attempt}")
        gang.ready_ref = gang.pg.ready()
        gang.deadline = time.time() + settings.GANG_START_TIMEOUT.get()
        self.placing.append(gang)

    def _fit_machine(self, step: str, options: dict, size: int) -> dict:
        """On a Ray of this machine alone, a gang that does not fit runs anyway, each member
        with its share of the machine (one line says so), as Metaflow's local runtime runs
        the members as processes of one machine."""
        machine = self.loop.machine
        if machine is None:
            return options
        share = {k: v / size for k, v in machine.items() if k in ("CPU", "GPU", "memory")}
        from .cluster import clamp_to_machine, describe_clamp

        fitted, cut = clamp_to_machine(options, share)
        if cut and step not in self.loop.clamped:
            self.loop.clamped.add(step)
            self.loop.progress.say(describe_clamp(step, cut).replace(
                "all this machine has", f"its share of this machine ({size} members)"))
        return fitted

    def poll(self) -> None:
        """Start the gangs whose placement groups are placed, fail those that waited too
        long, and launch again the gangs whose @retry delay is over."""
        now = time.time()
        self._reap()
        for due, tasks, attempt, fallback in [w for w in self.waiting if w[0] <= now]:
            self.waiting.remove((due, tasks, attempt, fallback))
            if not self.loop.stopping:
                self.launch(tasks, attempt, fallback)
        if not self.placing:
            return
        import ray

        for gang in list(self.placing):
            ready, _ = ray.wait([gang.ready_ref], timeout=0)
            if ready:
                self.placing.remove(gang)
                self._start(gang, self._probe(gang))
            elif now > gang.deadline or self.loop.stopping:
                self.placing.remove(gang)
                self._remove_group(gang)
                if not self.loop.stopping:
                    self._unplaceable(gang)
        if self.placing and self.loop.executor.in_flight == 0:
            time.sleep(0.05)  # nothing else to wait on: do not spin

    def _probe(self, gang: Gang) -> tuple[str, int]:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        probe = ray.remote(control_address).options(
            num_cpus=0, max_retries=2, name=f"{gang.step}:gang-address",
            scheduling_strategy=PlacementGroupSchedulingStrategy(gang.pg, 0))
        return ray.get(probe.remote())

    def _start(self, gang: Gang, address: tuple[str, int]) -> None:
        """Submit every member, each pinned to its bundle, with its gang information."""
        loop = self.loop
        decos = loop.decos[gang.step]
        control = gang.tasks[0].task_id
        placement = node_ranks(gang.pg, len(gang.tasks))
        gang.outstanding = len(gang.tasks)
        self.running[id(gang)] = gang
        for i, task in enumerate(gang.tasks):
            batch = loop.batches.make([(task, gang.attempt)], decos, {}, gang.fallback)
            batch.specs[0].gang = member_info(i, len(gang.tasks), control, *address,
                                              **placement[i])
            batch.options = dict(gang.options)
            if gang.pg is not None:
                from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

                batch.options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                    gang.pg, i)
            batch.gang = gang
            loop.executor.submit(batch)
            loop.progress.submitted(gang.step, 1)

    # -------------------------------------------------------------------------- results
    def on_result(self, result) -> None:
        """A member's batch came back. Nothing is handed on until the whole gang is in."""
        if result.phase == "delivered":
            return
        gang = result.batch.gang
        for task, attempt, outcome, error in result.per_task():
            if outcome is not None:
                gang.ran.append(outcome)
            if outcome is not None and outcome.ok and error is None:
                gang.done[task.task_id] = (task, outcome, result.payload_ref)
            elif gang.failure is None:
                gang.failure = (task, attempt, outcome, error or outcome.error)
                self._stop_members(gang, result.batch)
        gang.handles.append(result.batch.handle)
        gang.outstanding -= 1
        if gang.outstanding <= 0:
            self.running.pop(id(gang), None)
            if gang.failure is None:
                self._retire(gang)
            else:
                self._remove_group(gang)
            self._finish(gang)

    def _retire(self, gang: Gang) -> None:
        if gang.pg is None:
            return
        done = [h.completed() for h in gang.handles if hasattr(h, "completed")]
        self.retiring.append((gang.pg, done, time.time() + 30))
        gang.pg = None

    def _reap(self, wait: float = 0.0) -> None:
        """Remove the retiring placement groups whose members' tasks have returned (or that
        waited long enough)."""
        if not self.retiring:
            return
        import ray

        keep = []
        for pg, refs, deadline in self.retiring:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait) if refs else (
                [], [])
            if len(ready) == len(refs) or time.time() > deadline:
                _remove(pg)
            else:
                keep.append((pg, refs, deadline))
        self.retiring = keep

    def _stop_members(self, gang: Gang, failed_batch) -> None:
        self.loop.executor.cancel_where(
            lambda b: getattr(b, "gang", None) is gang and b is not failed_batch)

    def _finish(self, gang: Gang) -> None:
        loop = self.loop
        for outcome in gang.ran:
            loop._attempted(outcome)
        if gang.failure is None:
            for task in gang.tasks:
                _, outcome, payload_ref = gang.done[task.task_id]
                loop.rows.final(task.step, outcome.attempt, True)
                own = loop._own_locs(outcome, payload_ref)
                loop.complete(task, outcome.next_steps, outcome.foreach, outcome.num_splits,
                              own, outcome.split_shapes, outcome.removed)
            loop.progress.finished(gang.step, len(gang.tasks), 0)
            return
        self._failed(gang)

    def _failed(self, gang: Gang) -> None:
        """The gang failed: run it again whole if @retry (or @catch's fallback) says so,
        else fail the run with the member's error that started it."""
        loop = self.loop
        task, attempt, outcome, error = gang.failure
        decos = loop.decos[gang.step]
        n = len(gang.tasks)
        if error.retryable and gang.attempt < decos.retry_times and not loop.stopping:
            self.waiting.append((time.time() + decos.retry_delay, gang.tasks,
                                 gang.attempt + 1, False))
            loop.progress.finished(gang.step, 0, 0, retried=n)
            return
        died = error.kind is ErrorKind.SYSTEM or error.type.endswith(".StepCrashed")
        if died and outcome is None and decos.get("catch") is not None \
                and not loop.stopping and not gang.fallback:
            self.launch(gang.tasks, gang.attempt + 1, fallback=True)
            loop.progress.finished(gang.step, 0, 0, retried=n)
            return
        from .spec import TaskOutcome

        loop.progress.finished(gang.step, 0, n)
        failed = outcome or TaskOutcome(task.step, task.task_id, gang.attempt, ok=False)
        failed.ok, failed.error = False, error
        loop.failures.append(failed)
        loop.stopping = True

    def _unplaceable(self, gang: Gang) -> None:
        from .cluster import alive_nodes, describe_offers

        n = len(gang.tasks)
        asked = ", ".join(f"{k}={v:g}" if k != "memory" else f"memory={v / 2**30:.1f} GiB"
                          for k, v in bundle_of(gang.options).items())
        message = (
            f"Step {gang.step!r} is a @parallel step of {n} members, each asking for {asked} "
            f"(strategy {gang.strategy}), and the Ray cluster could not place all {n} at once "
            f"within {self._timeout():g} s (nodes offer: "
            f"{describe_offers(alive_nodes(self._ray()))}). Lower its @resources or "
            f"num_parallel, choose another strategy (@parallel(strategy='PACK')), add nodes, "
            f"or raise RAYFLOW_GANG_START_TIMEOUT if nodes are still starting.")
        task = gang.tasks[0]
        error = TaskError.from_exception(SchedulingError(message, step=gang.step))
        gang.failure = (task, gang.attempt, None, error)
        self._failed(gang)

    @staticmethod
    def _timeout() -> float:
        from .. import settings

        return settings.GANG_START_TIMEOUT.get()

    @staticmethod
    def _ray():
        import ray

        return ray

    def _remove_group(self, gang: Gang) -> None:
        if gang.pg is not None:
            _remove(gang.pg)
        gang.pg = None

    def close(self) -> None:
        """The run ends (or failed): no gang keeps a placement group."""
        try:
            self._reap(wait=2.0)
        except Exception:  # noqa: BLE001 - Ray may be going away with the run
            pass
        for pg, _, _ in self.retiring:
            _remove(pg)
        self.retiring = []
        for gang in self.placing + list(self.running.values()):
            self._remove_group(gang)
        self.placing.clear()
        self.running.clear()
        self.waiting.clear()


def _remove(pg) -> None:
    try:
        from ray.util import remove_placement_group

        remove_placement_group(pg)
    except Exception:  # noqa: BLE001 - Ray may be going away with the run
        pass


def bundle_of(options: dict) -> dict[str, float]:
    """A placement group bundle for one member, from its Ray task options."""
    from .cluster import demands_of

    bundle = {k: v for k, v in demands_of(options).items() if v}
    return bundle or {"CPU": 0.01}


def node_ranks(pg, size: int) -> list[dict]:
    """For each member, torchrun's LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK and
    GROUP_WORLD_SIZE: its rank among the members on its node, how many share the node, the
    node's rank and the number of nodes (nodes in order of their first member)."""
    nodes = [None] * size
    if pg is not None:
        try:
            from ray.util import placement_group_table

            by_bundle = placement_group_table(pg).get("bundles_to_node_id") or {}
            nodes = [by_bundle.get(i) for i in range(size)]
        except Exception:  # noqa: BLE001 - without it, each member counts as its own node
            pass
    if any(n is None for n in nodes):
        nodes = list(range(size))
    order = list(dict.fromkeys(nodes))
    out = []
    for i, node in enumerate(nodes):
        same = [j for j in range(size) if nodes[j] == node]
        out.append({"local_rank": same.index(i), "local_size": len(same),
                    "group_rank": order.index(node), "num_groups": len(order)})
    return out

