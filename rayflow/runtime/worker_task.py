"""What runs inside a worker for one task: set up the flow instance, run the step, capture.

`run_task` builds a fresh flow instance whose inherited artifacts load lazily, runs the user's
step inside the decorator hooks (environment, timeout, catch), checks the transition and the
foreach variable, and encodes every new or changed artifact through the datastore's artifact
store. It returns a `CapturedTask`: the small `TaskOutcome` for the driver, the new values
for the object store, and what the record and logs need. Persisting a batch of captured
tasks is `worker.py`'s job; the stdout/stderr tee is `capture.py`.

Nothing here raises for a user's mistake: a failing step becomes a failed outcome carrying a
`TaskError` (the user's own traceback, or rayflow's finding), and its batch-mates are
unaffected.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..current import TaskContext, current
from ..datastore.serializers import type_name
from ..decorators import StepDecorators
from ..exceptions import (
    FailureHandledByCatch,
    InvalidNextError,
    RayflowException,
    TimeoutException,
    UnsaveableArtifactError,
)
from ..flowspec import Inputs
from ..flowstate import FlowState, is_artifact_name, is_artifact_value, state_of
from ..user_decorators.wrapping import run_wrapped
from .artifacts import PENDING_SHA, ArtifactLoader, ArtifactLoc
from .capture import Tee, captured_output
from .errors import TaskError
from .process_stats import peak_rss, process_id
from .spec import RunContext, TaskOutcome, TaskSpec

# Values whose identity means "unchanged": they cannot be mutated in place.
_IMMUTABLE = (str, bytes, int, float, bool, complex, type(None), frozenset, tuple)


@dataclass
class WorkerFlow:
    """The flow as a worker needs it: class, graph and each step's decorators, built once
    per worker process rather than once per task."""

    cls: type
    graph: Any
    decorators: dict[str, StepDecorators]
    module: Any = None
    baseline: dict | None = None  # the module's globals right after import (isolation.py)
    _facts: dict = field(default_factory=dict)

    def facts(self, step: str) -> tuple:
        """(@timeout seconds, @card decorators, `task_succeeded` hooks) of `step`: looked up
        once per worker, not once per split."""
        got = self._facts.get(step)
        if got is None:
            decos = self.decorators[step]
            got = self._facts[step] = (
                decos.timeout_seconds, decos.all_named("card"),
                [h for h in (getattr(d, "task_succeeded", None) for d in decos.all) if h])
        return got


@dataclass
class CapturedTask:
    """One task's result before it is persisted."""

    outcome: TaskOutcome
    values: dict[str, Any] = field(default_factory=dict)   # new artifacts, for the payload
    encoded: list = field(default_factory=list)            # their EncodedArtifacts
    record_artifacts: dict[str, ArtifactLoc] = field(default_factory=dict)
    inputs_read: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    cards: object = None  # the step's current.card, when it has @card: rendered once persisted
    # Big Arrow and numpy values whose encoding (serialize + hash) waits until the batch has
    # handed its payload to the object store: the next step need not wait for it.
    deferred: list = field(default_factory=list)


def run_task(ctx: RunContext, wf: WorkerFlow, spec: TaskSpec, loader: ArtifactLoader, ds,
             node: str, spool=None, fdcap=None, output=None) -> CapturedTask:
    gnode = wf.graph[spec.step]
    decos = wf.decorators[spec.step]
    flow = wf.cls.__new__(wf.cls)
    state = FlowState(step=spec.step, params=ctx.params, view={**ctx.param_locs, **spec.view},
                      loader=loader, foreach_stack=list(spec.foreach_stack),
                      foreach_vars=_foreach_vars(wf.graph, spec.foreach_stack),
                      input_loader=_input_loader(spec, loader))
    state.attach(flow)
    outcome = TaskOutcome(spec.step, spec.task_id, spec.attempt, ok=False,
                          started_at=time.time(), node=node)
    cap = CapturedTask(outcome)
    tctx = _task_context(ctx, wf, spec)
    gang_env = _gang_member(spec, tctx)
    seconds, card_decos, succeeded = wf.facts(spec.step)
    if card_decos:
        from ..cards.render import collector_for

        tctx.card = cap.cards = collector_for(card_decos, lambda: ds, tctx)
    if spool is not None:
        spool.task_started(spec.task_id)
    sink = (lambda stream, text: spool.line(stream, spec.task_id, text)) if spool else None
    console = _task_output(ctx, spec, sink, fdcap, output)
    with gang_env, console as (out, err):
        current._set(tctx)
        reader_ns = _client_namespace(ctx.namespace)
        try:
            if spec.fallback:
                raise FailureHandledByCatch(spec.attempt)
            if spec.timed_out:  # an earlier run of this attempt was ended by the watchdog
                raise TimeoutException(timeout_message(spec.step, decos.timeout_seconds))
            hard = (lambda: spool.timed_out(spec.task_id)) if spool is not None else None
            _run_with_hooks(flow, spec, decos, tctx, loader, ctx.param_locs, wf.graph, hard,
                            seconds, succeeded)
            _finish_transition(flow, gnode, outcome)
            if outcome.foreach:
                outcome.split_shapes = _split_shapes(wf, gnode, flow, outcome)
            outcome.ok = True
        except BaseException as exc:  # noqa: BLE001 - a user's step may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            _handle_failure(flow, gnode, spec, decos, tctx, outcome, exc)
            if not outcome.ok:
                _keep_failed_artifacts(flow, cap, spec, ds.artifacts)
        finally:
            current._set(None)
            _client_namespace(reader_ns, restore=True)
        if outcome.ok:
            try:
                _capture_artifacts(flow, cap, spec, ds.artifacts)
            except Exception as exc:  # noqa: BLE001 - e.g. an artifact that cannot pickle
                outcome.ok = False
                _handle_failure(flow, gnode, spec, decos, tctx, outcome, exc)
    cap.stdout, cap.stderr = out.stored(), err.stored()
    outcome.printed = out.printed + err.printed
    outcome.console = console.hold.take() or None
    outcome.finished_at = time.time()
    outcome.worker, outcome.peak_rss = process_id(), peak_rss()
    return cap


def _task_output(ctx: RunContext, spec: TaskSpec, sink, fdcap, output) -> captured_output:
    """The task's stdout/stderr capture: `output`, the batch's, re-armed for this task, or
    one made for it alone (a task run on its own: spin)."""
    prefix = task_prefix(ctx, spec)
    if output is not None:
        return output.rearm(prefix, sink, hold=True)
    return captured_output(prefix, sink, fdcap, ctx.max_log_bytes, hold=True)


def task_prefix(ctx: RunContext, spec: TaskSpec) -> str:
    """What each of the task's console lines starts with, as in Metaflow: `[run/step/task] `."""
    return f"[{ctx.run_id}/{spec.step}/{spec.task_id}] "


def _task_context(ctx: RunContext, wf: WorkerFlow, spec: TaskSpec) -> TaskContext:
    """What `current` says inside the task."""
    tctx = TaskContext(ctx.flow_name, ctx.run_id, spec.step, spec.task_id, spec.attempt,
                       ctx.origin_run_id, ctx.user,
                       # The namespace the run was made in: user:<you> unless one was given.
                       # run --namespace= (empty) is the global one.
                       (ctx.namespace or None) if ctx.namespace is not None
                       else f"user:{ctx.user}",
                       sorted(ctx.params), ctx.tags,  # in dir() order, as Metaflow lists them
                       ctx.datastore_url, ctx.project)
    tctx.graph, tctx.flow_cls = wf.graph, wf.cls
    tctx._secrets = (ctx.secrets or {}).get(spec.step)  # @secrets read on the driver
    return tctx


def _gang_member(spec: TaskSpec, tctx: TaskContext):
    """A gang member's `current.parallel` and environment (runtime/gang.py), for the task."""
    if spec.gang is None:
        return contextlib.nullcontext()
    from .gang import member_context

    return member_context(spec.gang, tctx)


def _client_namespace(ns, restore: bool = False):
    """The client's namespace in the step: the one `run --namespace` gave ("" the global one),
    as Metaflow's step command sets it. Returns the one before, for `restore=True` to put back
    (a Ray worker goes on to other runs' tasks)."""
    namespaces = _NAMESPACES[0] if _NAMESPACES else None
    if namespaces is None:
        from ..client import namespaces
        _NAMESPACES.append(namespaces)
    before = namespaces._current_namespace
    if restore or ns is not None:
        namespaces._current_namespace = ns if restore else (ns or None)
    return before


_NAMESPACES: list = []  # the client's namespaces module, imported once


def _input_loader(spec: TaskSpec, loader: ArtifactLoader):
    if spec.item is None:
        return None
    item = spec.item

    def load():
        return loader.item(item.ref, item.offset)

    return load


_FOREACH_VARS: dict = {}


def _foreach_vars(graph, stack) -> list:
    key = (id(graph), tuple(frame[0] for frame in stack))
    hit = _FOREACH_VARS.get(key)
    if hit is None:
        if len(_FOREACH_VARS) > 1024:
            _FOREACH_VARS.clear()
        # The graph is kept with its entry, so its id cannot name another graph meanwhile.
        hit = _FOREACH_VARS[key] = (graph, [
            graph[frame[0]].foreach_param if frame[0] in graph else None for frame in stack])
    return list(hit[1])


def _run_with_hooks(flow, spec: TaskSpec, decos: StepDecorators, tctx, loader,
                    param_locs: dict, graph, hard_timeout=None, seconds=None,
                    succeeded=()) -> None:
    for d in decos.all:
        d.task_pre_step(flow, tctx)
    try:
        func = getattr(flow, spec.step)
        args = (_make_inputs(flow, spec, loader, param_locs, graph),) if spec.is_join else ()
        wrappers = getattr(getattr(type(flow), spec.step), "wrappers", None)
        if wrappers:  # user step decorators around the step
            def call():
                run_wrapped(flow, spec.step, lambda: func(*args), wrappers, graph[spec.step],
                            args[0] if args else None)
        else:
            def call():
                func(*args)
        if not seconds:
            call()
        else:
            with _time_limit(seconds, spec.step, hard_timeout):
                call()
    finally:
        for d in reversed(decos.all):
            d.task_post_step(flow, tctx)
    for hook in succeeded:
        hook(flow, tctx)


MAX_JOIN_READS = 10_000  # lineage entries a join records for what it read from its inputs


def _make_inputs(flow, spec: TaskSpec, loader, param_locs: dict, graph) -> Inputs:
    cls = type(flow)
    join_state = state_of(flow)
    table = spec.join
    node = graph[spec.step]
    # The inputs of a foreach join are the splits of the foreach it closes: one frame deeper.
    inner = (node.join_of, len(table)) if node.is_foreach_join else None

    def make(i: int):
        step = table.step_of(i)
        view_flow = cls.__new__(cls)
        stack = list(spec.foreach_stack)
        if inner is not None:
            # The inputs of a foreach join come in split order: input i is split i.
            stack.append((inner[0], i, inner[1]))
        FlowState(step=step, params=join_state.params, view=table.view(i, param_locs),
                  loader=loader, foreach_stack=stack, foreach_vars=_foreach_vars(graph, stack),
                  read_sink=_join_read_sink(join_state, step, table.task_id_of(i))
                  ).attach(view_flow)
        return view_flow

    return Inputs(table.step_names(), make)


def _join_read_sink(join_state: FlowState, step: str, task_id: str):
    reads = join_state.join_reads

    def record(name: str, sha: str) -> None:
        if len(reads) < MAX_JOIN_READS:
            reads[f"{step}/{task_id}:{name}"] = sha

    return record


HARD_TIMEOUT_GRACE_S = 10.0


def timeout_message(step: str, seconds: float) -> str:
    return f"Step {step!r} timed out after {seconds:g} s (@timeout)."


@contextmanager
def _time_limit(seconds: float | None, step: str, on_hard_timeout=None):
    """Raise TimeoutException in the step after `seconds` (SIGALRM, on the main thread). A
    step stuck where no signal handler runs (in C code) cannot be interrupted: a watchdog
    thread then ends the process HARD_TIMEOUT_GRACE_S later, after `on_hard_timeout()` noted
    why, so the batch's next run records the timeout instead of running the step again."""
    if not seconds:
        yield
        return
    usable = threading.current_thread() is threading.main_thread() and \
        hasattr(signal, "SIGALRM")
    watchdog = None
    if on_hard_timeout is not None:
        def kill_stuck_step():
            on_hard_timeout()
            os.kill(os.getpid(), signal.SIGKILL)

        watchdog = threading.Timer(seconds + HARD_TIMEOUT_GRACE_S, kill_stuck_step)
        watchdog.daemon = True
        watchdog.start()
    if usable:
        def on_alarm(signum, frame):
            raise TimeoutException(timeout_message(step, seconds))

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        if watchdog is not None:
            watchdog.cancel()


def _finish_transition(flow, gnode, outcome: TaskOutcome) -> None:
    trans = state_of(flow).transition
    if gnode.is_end:
        if trans is not None:
            raise RayflowException(f"Step {gnode.name!r} is the end step and must not call "
                                   f"self.next() ({gnode.source_file}).")
        return
    if trans is None and gnode.parallel_step:
        # As Metaflow: a @parallel step's transition is the graph's (its worker tasks may
        # return early without self.next()).
        trans = (tuple(gnode.out_funcs), None)
    if trans is None:
        raise RayflowException(
            f"Step {gnode.name!r} ({gnode.source_file}:{gnode.func_lineno}) finished without "
            f"calling self.next(). Make sure every code path ends with self.next(...).")
    outcome.next_steps, outcome.foreach = trans
    if outcome.foreach:
        outcome.num_splits = _foreach_cardinality(flow, gnode, outcome.foreach)


def _split_shapes(wf: WorkerFlow, gnode, flow, outcome: TaskOutcome):
    """Evaluate a dynamic @resources of the foreach target once per item, here, where the
    items are: the driver only ever sees the resulting option dicts."""
    target = gnode.out_funcs[0]
    res = wf.decorators[target].resources
    if not res.is_dynamic:
        return None
    import array

    shapes: dict[tuple, int] = {}
    index = array.array("I")
    for i, item in enumerate(getattr(flow, outcome.foreach)):
        try:
            opts = res.ray_options(item)
        except Exception as exc:  # noqa: BLE001 - the user's sizing function failed
            raise RayflowException(
                f"Step {target!r}: @resources could not size split {i} (item {item!r:.80}): "
                f"{type(exc).__name__}: {exc}.") from None
        key = tuple(sorted(opts.items(), key=lambda kv: kv[0]))
        key = tuple((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in key)
        index.append(shapes.setdefault(key, len(shapes)))
    options = [None] * len(shapes)
    for key, sid in shapes.items():
        options[sid] = {k: dict(v) if isinstance(v, tuple) else v for k, v in key}
    return options, index.tobytes()


def _foreach_cardinality(flow, gnode, var: str) -> int:
    """How many splits `self.<var>` makes: one per item, whatever the iterable (a string
    iterates its characters, a dict its keys), as in Metaflow; zero is an error."""
    where = f"{gnode.source_file}:{gnode.next_lineno}"
    try:
        value = getattr(flow, var)
    except AttributeError:
        raise InvalidNextError(
            f"Step {gnode.name!r} ({where}) fans out over foreach={var!r}, but self.{var} is "
            f"not set. Assign a list to self.{var} before self.next().",
            step=gnode.name) from None
    from ..unbounded_foreach import UnboundedForeachInput

    if isinstance(value, UnboundedForeachInput):
        raise InvalidNextError(
            f"Step {gnode.name!r} ({where}) fans out over self.{var}, a "
            f"{type(value).__name__}: an unbounded foreach is a Metaflow feature rayflow does "
            f"not support yet. Assign a list (one item per split) to self.{var}.",
            step=gnode.name)
    if isinstance(value, (list, tuple, range, str, bytes)) or is_ndarray(value):
        count = len(value)
    else:
        try:
            items = iter(value)
        except TypeError:
            raise InvalidNextError(
                f"Step {gnode.name!r} ({where}): the foreach variable self.{var} is a "
                f"{type(value).__name__}, which is not iterable. Assign a list (one item per "
                f"split) to self.{var}.", step=gnode.name) from None
        if items is value:
            # An iterator (a generator, say) can be read only once and not saved: keep its
            # items as a list, so splits can be sliced from it.
            value = list(items)
            setattr(flow, var, value)
            count = len(value)
        else:
            count = sum(1 for _ in items)
    if count == 0:
        raise InvalidNextError(
            f"Step {gnode.name!r} ({where}): the foreach over self.{var} produced zero splits. "
            f"A foreach needs at least one item; check self.{var}.", step=gnode.name)
    return count


def is_ndarray(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _handle_failure(flow, gnode, spec, decos, tctx, outcome: TaskOutcome, exc) -> None:
    last_attempt = spec.attempt >= decos.retry_times
    catch = decos.get("catch")
    # A mistake rayflow found (raised from its own code) fails at once; an exception the
    # step's code raised, a MetaflowException included, is the step's own.
    found_by_rayflow = isinstance(exc, RayflowException) and not exc.task_failure and \
        _raised_by_rayflow(exc) and not isinstance(exc, FailureHandledByCatch)
    # @catch is refused on a foreach or a switch step (check_catch_placement), as Metaflow
    # refuses it: a caught step goes on to its one next step.
    if last_attempt and catch is not None and not found_by_rayflow:
        catch.task_exception(flow, tctx, exc)
        outcome.next_steps = tuple(gnode.out_funcs)
        outcome.ok = outcome.caught = True
        return
    if isinstance(exc, UnsaveableArtifactError):
        exc = UnsaveableArtifactError(f"Step {spec.step!r}: {exc}", artifact=exc.artifact)
        outcome.error = TaskError.from_exception(exc)
    else:
        outcome.error = TaskError.from_exception(exc, _user_traceback(exc),
                                                 raised_by_user=not found_by_rayflow)
    text = outcome.error.describe().rstrip()
    if last_attempt and isinstance(sys.stderr, Tee):
        # The driver's error message (and the run report, and `rayflow status`) shows this
        # traceback: on the console it would show twice. The task's log keeps it.
        sys.stderr.log_only(text)
    else:  # an attempt that @retry runs again: the console says why
        print(text, file=sys.stderr)


def _raised_by_rayflow(exc: BaseException) -> bool:
    """True when the innermost frame of the traceback is rayflow's own code."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the user's step down, without rayflow's own frames above it; ""
    when no frame is the user's (rayflow noticed the mistake: its message says it all). On a
    cluster the flow runs from Ray's unpacked working_dir: paths are shown as on the driver."""
    tb = exc.__traceback__
    while tb is not None and \
            os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    if tb is None and isinstance(exc, RayflowException):
        return ""
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    source_dir = _SOURCE_DIR.get("dir")
    cwd = os.getcwd()
    if source_dir and "runtime_resources" in cwd and cwd != source_dir:
        text = text.replace(cwd + os.sep, source_dir + os.sep)
    return text


_SOURCE_DIR: dict[str, str] = {}


def set_source_dir(source_dir: str) -> None:
    """The flow's folder on the driver: tracebacks of a flow run from elsewhere (Ray's
    unpacked working_dir) show its paths as there."""
    _SOURCE_DIR["dir"] = source_dir


def _capture_artifacts(flow, cap: CapturedTask, spec: TaskSpec, store) -> None:
    """Encode what the step set or changed; keep inherited artifacts by reference."""
    state = state_of(flow)
    artifacts = dict(state.view)
    for name, (loc, _) in state.loaded.items():
        cap.inputs_read[name] = loc.sha
    if spec.item is not None and spec.item.var:  # a split's own item: var[index] -> var's hash
        cap.inputs_read[f"{spec.item.var}[{spec.item.index}]"] = spec.item.sha
    cap.inputs_read.update(state.join_reads)
    for name, value in list(flow.__dict__.items()):
        # `_name` is an artifact too, as in Metaflow; `__name`, Metaflow's and rayflow's
        # private names, functions and methods are not (flowstate.py).
        if not is_artifact_name(name) or not is_artifact_value(value):
            continue
        prior = state.loaded.get(name)
        if prior is not None and prior[1] == id(value) and _unchanged_by_identity(value):
            continue
        if (prior is None or prior[1] != id(value)) and defer_encoding(value):
            # A new object: no hash to compare with, so its hash can come later.
            loc = ArtifactLoc(name, PENDING_SHA, "", type_name(value), 0, key=spec.task_id)
            artifacts[name] = loc
            cap.outcome.new[name] = loc
            cap.values[name] = value
            cap.deferred.append(name)
            continue
        enc = store.encode(name, value)
        if prior is not None and prior[0].sha == enc.info.sha:
            continue
        loc = ArtifactLoc.from_info(name, enc.info, key=spec.task_id)
        artifacts[name] = loc
        cap.outcome.new[name] = loc
        cap.values[name] = value
        cap.encoded.append(enc)
    cap.outcome.adopted = {k: v for k, v in state.adopted.items() if k not in cap.outcome.new}
    cap.outcome.removed = tuple(sorted(state.removed - set(cap.outcome.new)))
    cap.record_artifacts = artifacts


def _keep_failed_artifacts(flow, cap: CapturedTask, spec: TaskSpec, store) -> None:
    """What a failed step had set before it raised goes into its record, as Metaflow
    persists it, so that the client shows it. Nothing is handed on to a next step, and the
    record says failed: resume runs the task again. Best effort: a value that cannot be
    saved leaves the record without the step's own artifacts, never hides the failure."""
    try:
        _capture_artifacts(flow, cap, spec, store)
        finish_encoding(cap, spec, store)
    except Exception:  # noqa: BLE001 - e.g. the very artifact the step failed to make
        cap.encoded, cap.record_artifacts = [], {}
    cap.values, cap.deferred = {}, []
    cap.outcome.new, cap.outcome.adopted, cap.outcome.removed = {}, {}, ()


DEFER_MIN_BYTES = 1 << 20


def defer_encoding(value) -> bool:
    """True for a value worth handing to the next step before it is encoded: an Arrow table,
    batch or array, or a numpy array of plain numbers, of at least DEFER_MIN_BYTES. Their
    encoding cannot fail, so the task's outcome is known before it is done."""
    cls = type(value)
    mod = cls.__module__
    if mod.startswith("pyarrow"):
        pa = sys.modules.get("pyarrow")
        if pa is None or not isinstance(value, (pa.Table, pa.RecordBatch, pa.ChunkedArray,
                                                pa.Array)):
            return False
        try:
            return value.nbytes >= DEFER_MIN_BYTES
        except Exception:  # noqa: BLE001 - e.g. an array type without a size
            return False
    if mod == "numpy" and cls.__name__ == "ndarray":
        return not value.dtype.hasobject and value.nbytes >= DEFER_MIN_BYTES
    return False


def finish_encoding(cap: CapturedTask, spec: TaskSpec, store) -> None:
    """Encode the values `_capture_artifacts` left for later; their locations get their
    hashes."""
    for name in cap.deferred:
        enc = store.encode(name, cap.values[name])
        loc = ArtifactLoc.from_info(name, enc.info, key=spec.task_id)
        cap.record_artifacts[name] = loc
        cap.outcome.new[name] = loc
        cap.encoded.append(enc)
    cap.deferred = []


def _unchanged_by_identity(value) -> bool:
    if isinstance(value, _IMMUTABLE):
        return True
    mod = type(value).__module__
    return mod.startswith("pyarrow") and type(value).__name__ in ("Table", "RecordBatch")
