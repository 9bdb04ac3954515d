"""Facts about the Ray cluster that the run loop must respect before and while a run goes on.

- A local datastore cannot serve a cluster of several nodes: workers on other machines would
  write checkpoints nobody else can read. That is refused before any task runs.
- A task whose resources no alive node offers would wait forever in Ray (seen here: a task
  pinned to a dead node's custom resource waits with no error). `FeasibilityWatch` notices and
  fails it, with a message naming the step and what it asked for, after a bounded wait.
"""

from __future__ import annotations

import time

from .. import settings
from ..exceptions import DataStoreError


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def check_datastore_fits_cluster(ray, datastore_url: str) -> None:
    if "://" in datastore_url and not datastore_url.startswith("file://"):
        return
    nodes = alive_nodes(ray)
    if len(nodes) > 1:
        raise DataStoreError(
            f"The datastore {datastore_url!r} is a local folder, but the Ray cluster has "
            f"{len(nodes)} nodes: tasks on other nodes could not read each other's "
            f"checkpoints. Use a shared datastore: --datastore s3://bucket/prefix (or set "
            f"RAYFLOW_DATASTORE).")


def demands_of(options: dict) -> dict[str, float]:
    """Ray resource demands implied by task options."""
    out: dict[str, float] = {}
    if options.get("num_cpus"):
        out["CPU"] = float(options["num_cpus"])
    if options.get("num_gpus"):
        out["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        out["memory"] = float(options["memory"])
    if options.get("accelerator_type"):
        out[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    out.update({k: float(v) for k, v in (options.get("resources") or {}).items()})
    return out


def feasible(demands: dict[str, float], nodes: list[dict]) -> bool:
    for node in nodes:
        have = node.get("Resources", {})
        if all(have.get(k, 0.0) >= v for k, v in demands.items()):
            return True
    return False


class FeasibilityWatch:
    """Tracks, per pending batch, since when no alive node could run it."""

    def __init__(self, ray, timeout: float | None = None, every: float = 2.0):
        self.ray = ray
        self.timeout = timeout if timeout is not None else settings.UNSCHEDULABLE_TIMEOUT.get()
        self.every = every
        self._last = 0.0
        self._since: dict[int, float] = {}

    def overdue(self, batches: list) -> list:
        """Batches that have been unschedulable for longer than the timeout."""
        now = time.time()
        if now - self._last < self.every:
            return []
        self._last = now
        nodes = alive_nodes(self.ray)
        out = []
        live_ids = set()
        for batch in batches:
            live_ids.add(id(batch))
            if feasible(demands_of(batch.options), nodes):
                self._since.pop(id(batch), None)
                continue
            since = self._since.setdefault(id(batch), now)
            if now - since >= self.timeout:
                out.append(batch)
        self._since = {k: v for k, v in self._since.items() if k in live_ids}
        return out

    @staticmethod
    def describe(batch, ray) -> str:
        demands = demands_of(batch.options)
        offered = describe_offers(alive_nodes(ray))
        wanted = ", ".join(_amount(k, v) for k, v in demands.items())
        return (f"Step {batch.step!r} asks for {wanted}, which no alive node of the Ray cluster "
                f"offers (nodes offer: {offered}). Lower its @resources, or add a node that has "
                f"them.")


def describe_offers(nodes: list[dict]) -> str:
    """What each alive node offers, in words (Ray's own bookkeeping resources left out)."""
    return "; ".join(
        ", ".join(_amount(k, v) for k, v in sorted(n.get("Resources", {}).items())
                  if not k.startswith("node:") and k != "object_store_memory"
                  and "_group_" not in k)
        for n in nodes) or "no alive nodes"


def _amount(name: str, value: float) -> str:
    """`memory=2.1 GiB` rather than `memory=2.25485e+09`: Ray counts memory in bytes."""
    if name == "memory":
        return f"{name}={value / 2**30:.1f} GiB"
    return f"{name}={value:g}"


# Ray task option -> the node resource it takes.
_CLAMPED = (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory"))


def single_machine_capacity(ray, session_kind: str) -> dict[str, float] | None:
    """What the one node offers when the run's Ray is this machine alone: the embedded Ray
    rayflow started for the run, or the warm one of `rayflow up`. None on a cluster (an
    --address), where @resources is enforced and a step waits for a node that fits."""
    if session_kind not in ("embedded", "warm"):
        return None
    nodes = alive_nodes(ray)
    return dict(nodes[0].get("Resources", {})) if len(nodes) == 1 else None


def clamp_to_machine(options: dict, capacity: dict) -> tuple[dict, dict]:
    """(`options` with CPUs, GPUs and memory cut to what the machine has, {option: (asked,
    given)} for each cut). Metaflow's local runtime runs a step whatever its @resources say;
    on one machine rayflow gives it all the machine has rather than wait forever."""
    out = dict(options)
    cut: dict[str, tuple[float, float]] = {}
    for option, resource in _CLAMPED:
        asked = options.get(option)
        have = capacity.get(resource, 0.0)
        if not asked or asked <= have:
            continue
        given = int(have) if option == "memory" else have
        if given:
            out[option] = given
        else:
            out.pop(option)
        cut[option] = (asked, given)
    return out, cut


def describe_clamp(step: str, cut: dict) -> str:
    """The one line a step's cut resources get."""
    def amount(option: str, value: float) -> str:
        if option == "memory":
            return f"memory={value / 2**20:.0f} MB"
        if option == "num_gpus" and not value:
            return "no GPU"
        return f"{option[4:-1]}={value:g}"  # @resources' names: cpu=, gpu=

    asked = ", ".join(amount(o, a) for o, (a, _) in cut.items())
    given = ", ".join(amount(o, g) for o, (_, g) in cut.items())
    return (f"Step {step!r} asks for {asked} (@resources); it runs with {given}, all this "
            f"machine has: a Ray on this machine alone runs a step anyway, as Metaflow's local "
            f"runtime does (on a cluster, --address, @resources is enforced).")
