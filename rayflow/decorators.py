"""Step decorators: @resources, @retry, @catch, @timeout, @environment (Metaflow's names).

A decorator here mostly *describes* what a step needs, and the runtime reads the description:
`resources` becomes Ray task options, `retry` tells the runner how often and after how long to
submit a failed task again, `timeout` arms a timer around the step inside the worker (and the
driver cancels a task stuck past it). `environment` and `catch` act inside the worker through
phase hooks: `task_pre_step` and `task_post_step` run around every attempt, and
`task_exception` runs once the last attempt allowed by @retry has failed. Decorators sit above
`@step` and may be used bare (`@retry`) or called (`@retry(times=2)`), as in Metaflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

from .exceptions import InvalidFlowError, RayflowException


class StepDecorator:
    """Base class. `defaults` lists the attributes a user may set, with their default values."""

    name = "decorator"
    defaults: dict[str, Any] = {}

    def __init__(self, **attributes):
        unknown = sorted(set(attributes) - set(self.defaults))
        if unknown:
            raise InvalidFlowError(
                f"@{self.name} does not take {', '.join(repr(u) for u in unknown)}. "
                f"Its attributes are: {', '.join(self.defaults) or 'none'}."
            )
        self.attributes = {**self.defaults, **attributes}
        self.validate()

    def validate(self) -> None:
        """Check attribute values when the decorator is applied (at import time)."""

    # Phase hooks, called inside the worker around the user's step. The defaults do nothing.
    def task_pre_step(self, flow, ctx) -> None:
        pass

    def task_post_step(self, flow, ctx) -> None:
        """Runs after every attempt, also one that raised (to undo what pre_step did)."""

    def task_succeeded(self, flow, ctx) -> None:
        """Runs after an attempt whose step returned without raising (what Metaflow's
        task_post_step is for)."""

    def task_exception(self, flow, ctx, exc: BaseException) -> None:
        """The step's last attempt raised `exc`. Only @catch defines it: the worker calls it
        instead of failing the task, which then counts as successful and takes its
        transition."""

    def shown_attributes(self) -> dict:
        """The attributes as records, `_graph_info` and reprs show them (@secrets hides what
        its sources hold)."""
        return self.attributes

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.shown_attributes().items())
        return f"@{self.name}({args})"


def _number(deco: str, key: str, value, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidFlowError(f"@{deco}({key}={value!r}): {key} must be a number.") from None
    if value < minimum:
        raise InvalidFlowError(f"@{deco}({key}={value!r}): {key} must be at least {minimum}.")
    return value


class ResourcesDecorator(StepDecorator):
    """What a task needs from the cluster. `memory` is in MB, as in Metaflow. Unlike Metaflow's
    local runtime, rayflow enforces it: Ray schedules the task only where it fits.

    Any attribute may also be a callable of the split's input (`self.input`), evaluated per split
    inside a foreach, so that one foreach can hold small and large items."""

    name = "resources"
    defaults = {"cpu": 1, "gpu": 0, "memory": None, "accelerator": None, "disk": None,
                "shared_memory": None, "custom": None}

    def validate(self) -> None:
        for key in ("cpu", "gpu", "memory"):
            value = self.attributes[key]
            if value is not None and not callable(value):
                self.attributes[key] = _number("resources", key, value)

    @property
    def is_dynamic(self) -> bool:
        return any(callable(v) for v in self.attributes.values())

    def ray_options(self, item: Any = None) -> dict:
        """The Ray task options for one task. `item` is the split's input for dynamic sizes."""
        attrs = {k: (v(item) if callable(v) else v) for k, v in self.attributes.items()}
        options: dict[str, Any] = {"num_cpus": float(attrs["cpu"] or 0)}
        if attrs["gpu"]:
            options["num_gpus"] = float(attrs["gpu"])
        if attrs["memory"]:
            options["memory"] = int(float(attrs["memory"]) * 1024 * 1024)
        if attrs["accelerator"]:
            options["accelerator_type"] = str(attrs["accelerator"])
        if attrs["custom"]:  # Ray custom resources, e.g. custom={"node_a": 1}
            options["resources"] = {str(k): float(v) for k, v in attrs["custom"].items()}
        return options


class RetryDecorator(StepDecorator):
    """Run a failed task again, up to `times` more times, `minutes_between_retries` apart:
    for an exception in the step, a @timeout, and a worker that died (after Ray's own
    retries of a lost worker). Mistakes rayflow finds in the step (a wrong transition, an
    artifact that cannot be saved) fail at once: running them again cannot help."""

    name = "retry"
    defaults = {"times": 3, "minutes_between_retries": 2}
    MAX_ATTEMPTS = 6  # Metaflow's: the first attempt, the retries, and @catch's fallback

    def __init__(self, **attributes):
        # Metaflow's local runtime retries at once; only its remote schedulers wait. A delay
        # the user wrote is what they rely on, so it is honoured; the default is not.
        self.explicit_delay = "minutes_between_retries" in attributes
        super().__init__(**attributes)

    def validate(self) -> None:
        self.attributes["times"] = int(_number("retry", "times", self.attributes["times"]))
        self.attributes["minutes_between_retries"] = _number(
            "retry", "minutes_between_retries", self.attributes["minutes_between_retries"])
        if self.attributes["times"] + 2 > self.MAX_ATTEMPTS:
            raise InvalidFlowError(
                f"@retry(times={self.attributes['times']}): the most retries a step can have "
                f"is {self.MAX_ATTEMPTS - 2}, as in Metaflow. Lower times=.")

    @property
    def times(self) -> int:
        return self.attributes["times"]

    @property
    def delay_seconds(self) -> float:
        if not self.explicit_delay:
            return 0.0
        return 60.0 * self.attributes["minutes_between_retries"]


def _user_frames(exc: BaseException):
    """The traceback of `exc` from the first frame outside rayflow (the user's step) down."""
    import os

    package = os.path.dirname(os.path.abspath(__file__))
    tb = exc.__traceback__
    while tb is not None and \
            os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep):
        tb = tb.tb_next
    return tb or exc.__traceback__


def check_catch_placement(graph, decos: dict) -> None:
    """@catch on a step that starts a foreach or a switch is refused, as Metaflow refuses it
    (written or from --with catch): a caught foreach would have no splits to go on with, and
    a caught switch no recorded case."""
    for name, step_decos in decos.items():
        node = graph[name]
        kind = {"split-foreach": "foreach split", "split-switch": "conditional switch"}.get(
            node.type)
        if kind and step_decos.get("catch") is not None:
            raise InvalidFlowError(
                f"@catch is defined for the step {name!r} ({node.where}) but @catch is not "
                f"supported in {kind} steps, as in Metaflow. Put @catch on the steps after it "
                f"(or leave --with catch out).", step=name)


def prepare_step_decorators(graph, decos: dict) -> dict:
    """What the driver checks of the steps' decorators before Ray starts (@catch's place,
    @secrets' sources), and what it hands the workers: the @secrets sources read on the
    driver, by step (see rayflow.plugins.secrets)."""
    from .plugins.secrets.secrets_decorator import prepare_secrets

    check_catch_placement(graph, decos)
    return prepare_secrets(decos)


class CatchDecorator(StepDecorator):
    """Keep going after a step fails for good: the exception is stored in the artifact `var`."""

    name = "catch"
    defaults = {"var": None, "print_exception": True}

    def task_exception(self, flow, ctx, exc: BaseException) -> None:
        from .flowspec import StepException

        if self.attributes["print_exception"]:
            import traceback

            # Metaflow's words and layout, on stdout as its logger writes them; the
            # traceback from the user's step down.
            lines = traceback.format_exception(type(exc), exc, _user_frames(exc))
            print(f"@catch caught an exception from {flow}")
            for line in "".join(lines).splitlines():
                print(f">  {line}")
        self._set_var(flow, StepException(exc))

    def task_succeeded(self, flow, ctx) -> None:
        # As in Metaflow: the variable exists either way, None when nothing was caught.
        self._set_var(flow, None)

    def _set_var(self, flow, value) -> None:
        if self.attributes["var"]:
            setattr(flow, self.attributes["var"], value)


class TimeoutDecorator(StepDecorator):
    """Stop a task that runs longer than the sum of seconds, minutes and hours."""

    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def validate(self) -> None:
        total = 0.0
        for key, scale in (("seconds", 1), ("minutes", 60), ("hours", 3600)):
            total += scale * _number("timeout", key, self.attributes[key])
        if total <= 0:
            raise InvalidFlowError("@timeout needs seconds=, minutes= or hours= above zero.")
        self.total_seconds = total


class EnvironmentDecorator(StepDecorator):
    """Environment variables set for the duration of the step, then restored."""

    name = "environment"
    defaults = {"vars": {}}

    def validate(self) -> None:
        if not isinstance(self.attributes["vars"], dict):
            raise InvalidFlowError("@environment(vars=...) takes a dict of names to values.")

    def task_pre_step(self, flow, ctx) -> None:
        self._saved = {k: os.environ.get(k) for k in self.attributes["vars"]}
        os.environ.update({k: str(v) for k, v in self.attributes["vars"].items()})

    def task_post_step(self, flow, ctx) -> None:
        for key, old in getattr(self, "_saved", {}).items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class PypiDecorator(StepDecorator):
    """@pypi(packages={name: version}, python=None, disabled=False): the step's tasks run in
    a Ray runtime environment with these packages on top of rayflow's own; @pypi_base gives
    every step packages, which a step's own @pypi adds to or overrides (runtime/environments.py)."""

    name = "pypi"
    defaults = {"packages": {}, "python": None, "disabled": None}

    def validate(self) -> None:
        from .runtime.environments import check_attributes

        check_attributes(f"@{self.name}", self.attributes)


class CondaDecorator(PypiDecorator):
    """@conda(packages=, libraries=, python=, disabled=): Ray's conda runtime environment."""

    name = "conda"
    defaults = {"packages": {}, "libraries": {}, "python": None, "disabled": None}


class CardDecorator(StepDecorator):
    """@card: a page about the task, rendered once it finishes (see rayflow.cards). A step may
    have several; `current.card` adds components to them while the step runs."""

    name = "card"
    allow_multiple = True
    defaults = {"type": "default", "options": {}, "scope": "task", "timeout": 45, "id": None,
                "save_errors": True, "customize": False, "refresh_interval": 5}

    def validate(self) -> None:
        a = self.attributes
        if not isinstance(a["type"], str) or not a["type"]:
            raise InvalidFlowError(f"@card(type={a['type']!r}): type names a card type, a "
                                   "non-empty string such as 'default' or 'blank'.")
        if a["id"] is not None and not isinstance(a["id"], str):
            raise InvalidFlowError(f"@card(id={a['id']!r}): an id is a string.")
        if not isinstance(a["options"], dict):
            raise InvalidFlowError(f"@card(options={a['options']!r}): options is a dict.")
        a["timeout"] = _number("card", "timeout", a["timeout"])


class ActorPoolDecorator(StepDecorator):
    """@actor_pool: the step's tasks run on a pool of long-lived Ray actors, each of which
    runs `setup` once and hands what it made to its tasks as `current.actor.state` (see
    rayflow/runtime/pool.py). The pool grows with the queue up to `max` actors and shrinks to
    `min` after `idle_timeout` seconds without work; steps that give the same `name` share
    one pool. Each actor is sized by the step's @resources (fractional GPUs included)."""

    name = "actor_pool"
    defaults = {"min": 0, "max": 4, "setup": None, "name": None, "idle_timeout": 30.0,
                "max_in_flight": 1}

    def validate(self) -> None:
        a = self.attributes
        for key in ("min", "max", "max_in_flight"):
            value = _number("actor_pool", key, a[key])
            if value != int(value):
                raise InvalidFlowError(f"@actor_pool({key}={a[key]!r}): {key} is a whole "
                                       "number.")
            a[key] = int(value)
        if a["max"] < 1 or a["max"] < a["min"]:
            raise InvalidFlowError(f"@actor_pool(min={a['min']}, max={a['max']}): max must be "
                                   "at least 1 and at least min.")
        if a["max_in_flight"] < 1:
            raise InvalidFlowError("@actor_pool(max_in_flight=...): at least 1.")
        a["idle_timeout"] = _number("actor_pool", "idle_timeout", a["idle_timeout"])
        setup = a["setup"]
        if setup is not None and not callable(setup) and not (
                isinstance(setup, str) and ":" in setup):
            raise InvalidFlowError(f"@actor_pool(setup={setup!r}): setup is a function (or "
                                   "'module:function') that returns what the tasks share.")
        if a["name"] is not None and (not isinstance(a["name"], str) or not a["name"]):
            raise InvalidFlowError(f"@actor_pool(name={a['name']!r}): a pool's name is a "
                                   "non-empty string.")

    def task_pre_step(self, flow, ctx) -> None:
        from .runtime.actor import ensure_setup

        ctx.actor = ensure_setup(self.attributes["name"] or ctx.step_name,
                                 self.attributes["setup"])


class ComputeDecorator(StepDecorator):
    """@kubernetes and @batch: their cpu/gpu/memory become Ray resources; the rest is ignored."""

    def __init__(self, **attributes):
        self.attributes = dict(attributes)

    def as_resources(self) -> ResourcesDecorator:
        keys = {"cpu": "cpu", "gpu": "gpu", "memory": "memory"}
        picked = {k: self.attributes[src] for src, k in keys.items() if src in self.attributes}
        return ResourcesDecorator(**picked)


class KubernetesDecorator(ComputeDecorator):
    name = "kubernetes"


class BatchDecorator(ComputeDecorator):
    name = "batch"


class DeferredDecorator:
    """A decorator whose attributes use the flow's configs (`config.x`, `config_expr(...)`,
    `**config`): kept as written until the run knows the configs, then built (`build`)."""

    def __init__(self, cls: type[StepDecorator], name: str, attributes: dict):
        self.cls, self.name, self.raw = cls, name, attributes

    def build(self, configs: dict[str, Any]) -> StepDecorator:
        from .config import resolve_delayed

        deco = self.cls(**resolve_delayed(self.raw, configs))
        deco.name = self.name
        return deco

    def __repr__(self) -> str:
        return f"@{self.name}(<waits for configs>)"


# Every step decorator by its name (`environment`, `retry`, ...): what a mutator's
# `add_decorator("retry:times=2")` and `add_decorator(retry, ...)` refer to.
STEP_DECORATORS: dict[str, Callable] = {}
# Flow-level decorators by name (`project`, `schedule`, ...), filled by their modules.
FLOW_DECORATORS: dict[str, Callable] = {}


def build_step_decorator(cls: type[StepDecorator], name: str, attributes: dict,
                         configs: dict[str, Any] | None = None):
    """One decorator instance: built now, or, when its attributes read the flow's configs
    and `configs` is not given, kept as a DeferredDecorator until the run knows them."""
    from .config import has_delayed, resolve_delayed

    if has_delayed(attributes):
        if configs is None:
            return DeferredDecorator(cls, name, attributes)
        attributes = resolve_delayed(attributes, configs)
    deco = cls(**attributes)
    deco.name = name
    return deco


def _make(cls: type[StepDecorator], name: str | None = None) -> Callable:
    """Build the user-facing decorator function for `cls`: usable as @x and @x(...)."""

    def decorator(func=None, **attributes):
        def attach(f):
            if not getattr(f, "is_step", False):
                raise InvalidFlowError(
                    f"@{deco_name} is applied to {getattr(f, '__name__', f)!r}, which is not a "
                    f"step. Put @{deco_name} above @step.")
            deco = build_step_decorator(cls, deco_name, attributes)
            if not getattr(cls, "allow_multiple", False) and \
                    any(d.name == deco.name for d in f.decorators):
                raise InvalidFlowError(
                    f"Step {f.__name__!r} has @{deco.name} twice. Keep one.")
            f.decorators.append(deco)
            return f

        return attach(func) if func is not None else attach

    deco_name = name or cls.name
    decorator.__name__ = deco_name
    decorator.__doc__ = cls.__doc__
    decorator._rf_step_decorator = (cls, deco_name)
    STEP_DECORATORS[deco_name] = decorator
    return decorator


from .plugins.secrets.secrets_decorator import SecretsDecorator  # noqa: E402 - needs StepDecorator

resources = _make(ResourcesDecorator)
retry = _make(RetryDecorator)
catch = _make(CatchDecorator)
timeout = _make(TimeoutDecorator)
environment = _make(EnvironmentDecorator)
kubernetes = _make(KubernetesDecorator)
batch = _make(BatchDecorator)
card = _make(CardDecorator)
actor_pool = _make(ActorPoolDecorator)
conda = _make(CondaDecorator)
pypi = _make(PypiDecorator)
secrets = _make(SecretsDecorator)

@dataclass
class FlowDecoratorRecord:
    """A flow-level decorator as written on a class (or added by a FlowMutator): its name
    and attributes, as `MutableFlow.decorator_specs` shows them."""

    name: str
    attributes: dict
    statically_defined: bool = True
    inserted_by: list | None = None

    def get_args_kwargs(self) -> tuple[list, dict]:
        return [], dict(self.attributes)


FLOW_DECOS_KEY = "_rf_flow_decorators"        # a class's own records
FLOW_DECOS_ALL_KEY = "_rf_flow_decorators_all"  # a mutated class: every record, final


def record_flow_decorator(flow_cls, record: FlowDecoratorRecord) -> None:
    key = FLOW_DECOS_ALL_KEY if FLOW_DECOS_ALL_KEY in flow_cls.__dict__ else FLOW_DECOS_KEY
    own = flow_cls.__dict__.get(key)
    if own is None:
        own = []
        type.__setattr__(flow_cls, key, own)
    own.append(record)


def flow_decorator_records(flow_cls) -> list[FlowDecoratorRecord]:
    """The flow-level decorators of a class and its bases (bases first)."""
    if FLOW_DECOS_ALL_KEY in flow_cls.__dict__:
        return list(flow_cls.__dict__[FLOW_DECOS_ALL_KEY])
    out: list[FlowDecoratorRecord] = []
    for klass in reversed(flow_cls.__mro__):
        out.extend(klass.__dict__.get(FLOW_DECOS_KEY, ()))
    return out


def _accepted_flow_decorator(name: str) -> Callable:
    """A Metaflow flow-level decorator (@conda_base, @pypi_base, @schedule, ...) that has no
    meaning here: accepted, bare or called, so a Metaflow flow runs after changing its import
    line, and does nothing to the class but note that it is there."""

    def decorator(cls=None, **attributes):
        def attach(flow_cls):
            if isinstance(flow_cls, type):
                record_flow_decorator(flow_cls, FlowDecoratorRecord(name, dict(attributes)))
            return flow_cls

        if cls is not None and isinstance(cls, type):
            return attach(cls)
        return attach

    decorator.__name__ = name
    decorator.__doc__ = _accepted_flow_decorator.__doc__
    decorator._rf_flow_decorator = name
    FLOW_DECORATORS[name] = decorator
    return decorator


conda_base = _accepted_flow_decorator("conda_base")
pypi_base = _accepted_flow_decorator("pypi_base")
schedule = _accepted_flow_decorator("schedule")
trigger = _accepted_flow_decorator("trigger")
trigger_on_finish = _accepted_flow_decorator("trigger_on_finish")

# Decorators a user may attach to every step from the command line (`--with retry`): every
# step decorator a flow may use as @name.
BY_NAME: dict[str, type[StepDecorator]] = {cls.name: cls for cls in (
    ResourcesDecorator, RetryDecorator, CatchDecorator, TimeoutDecorator,
    EnvironmentDecorator, CardDecorator, ActorPoolDecorator, KubernetesDecorator,
    BatchDecorator, CondaDecorator, PypiDecorator, SecretsDecorator)}

def parse_with_spec(spec: str) -> StepDecorator:
    """Parse Metaflow's `--with` syntax: `retry`, `retry:times=2,minutes_between_retries=0`,
    `kubernetes:cpu=4,memory=8000`, `environment:vars={"A": "1", "B": "2"}` (attributes read
    as every decorator spec is: user_decorators.common.parse_spec_args)."""
    from .user_decorators.common import parse_spec_args, split_spec

    name, args = split_spec(spec)
    cls = BY_NAME.get(name)
    if cls is None:
        raise InvalidFlowError(
            f"--with {spec!r}: unknown decorator {name!r}. Choose one of: {', '.join(BY_NAME)}.")
    try:
        positional, attributes = parse_spec_args(args)
    except RayflowException as exc:
        raise InvalidFlowError(f"--with {spec!r}: {exc}") from None
    if positional:
        raise InvalidFlowError(f"--with {spec!r}: @{name} takes its attributes by name "
                               "(name=value).")
    return cls(**attributes)


@dataclass
class StepDecorators:
    """The decorators of one step, looked up by kind. Built once per step by the runtime."""

    all: list[StepDecorator] = field(default_factory=list)
    # @pypi/@conda's environment (runtime/environments.StepEnvironment), set before Ray starts
    environment: Any = None

    @property
    def runtime_env(self) -> dict | None:
        return self.environment.runtime_env if self.environment is not None else None

    def get(self, name: str) -> StepDecorator | None:
        return next((d for d in self.all if d.name == name), None)

    def all_named(self, name: str) -> list[StepDecorator]:
        return [d for d in self.all if d.name == name]

    @property
    def resources(self) -> ResourcesDecorator:
        """@resources, and @kubernetes or @batch (written or from --with): with both, each of
        cpu, gpu and memory is the larger of the two, as Metaflow's @kubernetes takes it."""
        res = self.get("resources")
        compute = self.get("kubernetes") or self.get("batch")
        if compute is None:
            return res or ResourcesDecorator()
        sized = compute.as_resources()
        if res is None or res.is_dynamic or sized.is_dynamic:
            return res or sized
        larger = {}
        for key in ("cpu", "gpu", "memory"):
            given = [v for v in (res.attributes[key], sized.attributes[key]) if v is not None]
            larger[key] = max(given) if given else None
        return ResourcesDecorator(**{**res.attributes, **larger})

    @property
    def retry_times(self) -> int:
        r = self.get("retry")
        return r.times if r else 0

    @property
    def retry_delay(self) -> float:
        r = self.get("retry")
        return r.delay_seconds if r else 0.0

    @property
    def timeout_seconds(self) -> float | None:
        t = self.get("timeout")
        return t.total_seconds if t else None

    @classmethod
    def for_step(cls, func, extra: list[StepDecorator] = (),
                 configs: dict[str, Any] | None = None) -> "StepDecorators":
        """The step's decorators, those that wait for configs built from `configs` (the
        run's, by name), then the `--with` ones the step does not have already."""
        decos = [d.build(configs or {}) if isinstance(d, DeferredDecorator) else d
                 for d in func.decorators]
        if getattr(func, "_rf_with_applied", False):  # a mutated flow: --with is in already
            return cls(decos)
        names = {d.name for d in decos}
        # `--with card` adds a card only to a step that has none, as in Metaflow.
        decos += [d for d in extra if d.name not in names]
        return cls(decos)
