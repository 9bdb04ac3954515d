"""What runs inside a worker: one batch of tasks of one step.

For each TaskSpec the worker builds a fresh flow instance whose inherited artifacts load
lazily, runs the user's step inside the decorator hooks (environment, timeout, catch), checks
the transition and the foreach variable, and captures every new or changed artifact. Then, for
the whole batch at once: blobs go to the content-addressed store (one batch call), task
records and DONE markers follow (records first, then DONEs: the commit protocol), logs last.
The batch returns small `TaskOutcome`s plus one payload dict with the new artifact values,
which Ray keeps in its object store for the downstream steps.

Nothing here raises for a user's mistake: a failing step becomes a failed outcome carrying
the user's own traceback, and its batch-mates are unaffected.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..current import TaskContext, current
from ..decorators import StepDecorators
from ..exceptions import RayflowException, TimeoutException
from ..flowspec import Inputs
from .artifacts import ArtifactLoader, ArtifactLoc
from .flowfile import find_flow_class, graph_of, import_flow_file
from .spec import RunContext, TaskOutcome, TaskSpec

# Artifacts this small are kept inside the task record instead of a blob file of their own.
INLINE_MAX_BYTES = 256

# Values whose identity means "unchanged": they cannot be mutated in place.
_IMMUTABLE = (str, bytes, int, float, bool, complex, type(None), frozenset, tuple)

_DATASTORES: dict[tuple[str, str], Any] = {}


def datastore_for(url: str, flow_name: str):
    from ..datastore import FlowDataStore

    key = (url, flow_name)
    ds = _DATASTORES.get(key)
    if ds is None:
        ds = _DATASTORES[key] = FlowDataStore.from_url(url, flow_name)
    return ds


def _node_name() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()[:12] + "@" + socket.gethostname()
    except Exception:  # noqa: BLE001 - the node name is informative only
        pass
    return socket.gethostname()


@dataclass
class _Captured:
    """One task's result before it is persisted."""

    outcome: TaskOutcome
    values: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, Any] = field(default_factory=dict)  # name -> serialized bytes
    record_artifacts: dict[str, ArtifactLoc] = field(default_factory=dict)
    inputs_read: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""


def execute_batch(ctx: RunContext, specs: list[TaskSpec], extra_decorators=()) -> tuple:
    """Run `specs` (all of one step) and persist them. Returns (outcomes, payload)."""
    _SOURCE_DIR["dir"] = ctx.source_dir
    os.environ.update(ctx.datastore_env)
    module = import_flow_file(ctx.flow_file, ctx.module_name)
    cls = find_flow_class(module, ctx.class_name)
    graph = graph_of(cls)
    ds = datastore_for(ctx.datastore_url, ctx.flow_name)
    loader = ArtifactLoader(lambda: ds)
    node = _node_name()
    captured = [run_task(ctx, cls, graph, spec, loader, node, extra_decorators)
                for spec in specs]
    persist(ds, ctx, specs, captured)
    payload = {c.outcome.task_id: c.values for c in captured if c.values}
    return [c.outcome for c in captured], payload


def run_task(ctx: RunContext, cls, graph, spec: TaskSpec, loader, node: str,
             extra_decorators=()) -> _Captured:
    gnode = graph[spec.step]
    decos = StepDecorators.for_step(getattr(cls, spec.step), list(extra_decorators))
    flow = cls.__new__(cls)
    flow._rf_setup(params=ctx.params, view={**ctx.param_locs, **spec.view}, loader=loader,
                   step_name=spec.step, foreach_stack=list(spec.foreach_stack),
                   input_loader=_input_loader(spec, loader))
    flow.__dict__["_rf_param_locs"] = ctx.param_locs
    outcome = TaskOutcome(spec.step, spec.task_id, spec.attempt, ok=False,
                          started_at=time.time(), node=node)
    cap = _Captured(outcome)
    tctx = TaskContext(ctx.flow_name, ctx.run_id, spec.step, spec.task_id, spec.attempt,
                       ctx.origin_run_id, ctx.user, ctx.namespace, list(ctx.params), ctx.tags)
    with _captured_output(f"[{spec.step}/{spec.task_id}] ") as (out, err):
        current._set(tctx)
        try:
            _run_with_hooks(flow, gnode, spec, decos, tctx, loader)
            _finish_transition(flow, gnode, outcome)
            if outcome.foreach:
                outcome.split_shapes = _split_shapes(cls, graph, gnode, flow, outcome,
                                                     extra_decorators)
            outcome.ok = True
        except BaseException as exc:  # noqa: BLE001 - a user's step may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            _handle_failure(flow, gnode, spec, decos, tctx, outcome, exc)
        finally:
            current._set(None)
        if outcome.ok:
            try:
                _capture_artifacts(flow, cap, spec,
                                   datastore_for(ctx.datastore_url, ctx.flow_name))
            except Exception as exc:  # noqa: BLE001 - e.g. an artifact that cannot pickle
                outcome.ok = False
                _handle_failure(flow, gnode, spec, decos, tctx, outcome, exc)
    cap.stdout, cap.stderr = out.getvalue(), err.getvalue()
    outcome.finished_at = time.time()
    return cap


def _input_loader(spec: TaskSpec, loader: ArtifactLoader):
    if spec.item is None:
        return None
    item = spec.item

    def load():
        return loader.payload(item.ref)[item.offset]

    return load


def _run_with_hooks(flow, gnode, spec: TaskSpec, decos: StepDecorators, tctx, loader) -> None:
    for d in decos.all:
        d.task_pre_step(flow, tctx)
    try:
        func = getattr(flow, spec.step)
        with _time_limit(decos.timeout_seconds, spec.step):
            if spec.is_join:
                func(_make_inputs(flow, spec, loader, tctx_param_locs(flow)))
            else:
                func()
    finally:
        for d in reversed(decos.all):
            d.task_post_step(flow, tctx)


def tctx_param_locs(flow) -> dict:
    return flow.__dict__.get("_rf_param_locs", {})


def _make_inputs(flow, spec: TaskSpec, loader, param_locs: dict) -> Inputs:
    cls = type(flow)
    inputs = spec.join_inputs

    def make(i: int):
        inp = inputs[i]
        view = {**param_locs, **spec.join_bases[inp.base], **inp.own}
        view_flow = cls.__new__(cls)
        stack = _stack_of(inp.task_id, spec.foreach_stack, inp.step)
        view_flow._rf_setup(params=flow.__dict__["_rf_params"], view=view, loader=loader,
                            step_name=inp.step, foreach_stack=stack)
        view_flow.__dict__["_rf_input_task"] = (inp.step, inp.task_id)
        view_flow.__dict__["_rf_read_sink"] = _join_read_sink(flow, inp.step, inp.task_id)
        return view_flow

    return Inputs([i.step for i in inputs], make)


MAX_JOIN_READS = 10_000  # lineage entries a join records for what it read from its inputs


def _join_read_sink(flow, step: str, task_id: str):
    reads = flow.__dict__.setdefault("_rf_join_reads", {})

    def record(name: str, sha: str) -> None:
        if len(reads) < MAX_JOIN_READS:
            reads[f"{step}/{task_id}:{name}"] = sha

    return record


def _stack_of(task_id: str, join_stack: tuple, step: str) -> list:
    # An input's index is its last task-id component; enough for `inp.index` in a join.
    if task_id == "0" and not join_stack:
        return []
    parts = task_id.split("_")
    if len(parts) > len(join_stack):
        return list(join_stack) + [(step, int(parts[-1]), -1)]
    return list(join_stack)


@contextmanager
def _time_limit(seconds: float | None, step: str):
    """Raise TimeoutException in the step after `seconds`. Uses SIGALRM, which only works on
    the main thread; elsewhere the driver's watchdog cancels the task instead."""
    usable = seconds and threading.current_thread() is threading.main_thread() \
        and hasattr(signal, "SIGALRM")
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutException(f"Step {step!r} timed out after {seconds:g} s (@timeout).")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _finish_transition(flow, gnode, outcome: TaskOutcome) -> None:
    trans = flow.__dict__.get("_rf_transition")
    if gnode.type == "end":
        if trans is not None:
            raise RayflowException(f"Step 'end' must not call self.next() ({gnode.source_file}).")
        return
    if trans is None:
        raise RayflowException(
            f"Step {gnode.name!r} ({gnode.source_file}:{gnode.func_lineno}) finished without "
            f"calling self.next(). Make sure every code path ends with self.next(...).")
    outcome.next_steps, outcome.foreach = trans
    if outcome.foreach:
        outcome.num_splits = _foreach_cardinality(flow, gnode, outcome.foreach)


def _split_shapes(cls, graph, gnode, flow, outcome: TaskOutcome, extra_decorators):
    """Evaluate a dynamic @resources of the foreach target once per item, here, where the
    items are: the driver only ever sees the resulting option dicts."""
    target = gnode.out_funcs[0]
    res = StepDecorators.for_step(getattr(cls, target), list(extra_decorators)).resources
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
    where = f"{gnode.source_file}:{gnode.next_lineno}"
    try:
        value = getattr(flow, var)
    except AttributeError:
        raise RayflowException(
            f"Step {gnode.name!r} ({where}) fans out over foreach={var!r}, but self.{var} is "
            f"not set. Assign a list to self.{var} before self.next().") from None
    if isinstance(value, (list, tuple, range)) or _is_ndarray(value):
        return len(value)
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise RayflowException(
            f"Step {gnode.name!r} ({where}): the foreach variable self.{var} is a "
            f"{type(value).__name__}, not a list or other iterable of items. Assign a list "
            f"(one item per split) to self.{var}.")
    items = list(value)
    setattr(flow, var, items)  # keep an indexable copy, so splits can be sliced from it
    return len(items)


def _is_ndarray(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _handle_failure(flow, gnode, spec, decos, tctx, outcome: TaskOutcome, exc) -> None:
    last_attempt = spec.attempt >= decos.retry_times
    catch = decos.get("catch")
    if last_attempt and catch is not None and not isinstance(exc, RayflowException):
        catch.task_exception(flow, tctx, exc)
        outcome.next_steps = tuple(gnode.out_funcs)
        outcome.foreach = gnode.foreach_param
        outcome.num_splits = 0 if gnode.foreach_param else None
        outcome.ok = True
        return
    outcome.error = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": _user_traceback(exc),
        "user": not isinstance(exc, RayflowException),
        "retryable": not isinstance(exc, RayflowException),
    }
    print(outcome.error["traceback"], file=sys.stderr, end="")


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the user's step down, without rayflow's own frames above it. On a
    cluster the flow runs from Ray's unpacked working_dir: paths are shown as on the driver."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(here):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    source_dir = _SOURCE_DIR.get("dir")
    cwd = os.getcwd()
    if source_dir and "runtime_resources" in cwd and cwd != source_dir:
        text = text.replace(cwd + os.sep, source_dir + os.sep)
    return text


_SOURCE_DIR: dict[str, str] = {}


def _capture_artifacts(flow, cap: _Captured, spec: TaskSpec, ds) -> None:
    """Serialize what the step set or changed; keep inherited artifacts by reference."""
    from ..datastore import blob_hash, serialize

    view = flow.__dict__["_rf_view"]
    loaded = flow.__dict__["_rf_loaded"]
    compress = not ds.storage.is_local
    adopted = flow.__dict__.get("_rf_adopted", {})
    artifacts = dict(view)
    for name, (loc, _) in loaded.items():
        cap.inputs_read[name] = loc.sha
    cap.inputs_read.update(flow.__dict__.get("_rf_join_reads", {}))
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_"):
            continue
        prior = loaded.get(name)
        if prior is not None and prior[1] == id(value) and _unchanged_by_identity(value):
            continue
        try:
            ser = serialize(value, compress=compress)
        except Exception as exc:  # noqa: BLE001
            raise RayflowException(
                f"Step {spec.step!r}: artifact self.{name} ({type(value).__name__}) cannot be "
                f"saved: {type(exc).__name__}: {exc}. Store a picklable value, or keep it in a "
                f"local variable (or a name starting with _) if it need not be an artifact."
            ) from None
        data = ser.data
        sha = blob_hash(data)
        if prior is not None and prior[0].sha == sha:
            continue
        size = len(memoryview(data).cast("B"))
        inline = base64.b64encode(bytes(data)).decode() if size <= INLINE_MAX_BYTES else None
        loc = ArtifactLoc(name, sha, ser.encoding, ser.type, size, None, spec.task_id, inline)
        artifacts[name] = loc
        cap.outcome.new[name] = loc
        cap.values[name] = value
        if inline is None:
            cap.blobs[name] = data
    cap.outcome.adopted = {k: v for k, v in adopted.items() if k not in cap.outcome.new}
    cap.outcome.removed = tuple(n for n in flow.__dict__.get("_rf_removed", ()))
    cap.record_artifacts = artifacts


def _unchanged_by_identity(value) -> bool:
    if isinstance(value, _IMMUTABLE):
        return True
    mod = type(value).__module__
    return mod.startswith("pyarrow") and type(value).__name__ in ("Table", "RecordBatch")


def persist(ds, ctx: RunContext, specs: list[TaskSpec], captured: list[_Captured]) -> None:
    """Blobs first (one batch), then every record, then every DONE, then logs."""
    from ..datastore import TaskRecord

    blobs = [(cap.outcome.new[name].sha, data) for cap in captured
             for name, data in cap.blobs.items()]
    if blobs:
        ds.cas.save_blobs([b for _, b in blobs], shas=[sha for sha, _ in blobs])
    records = []
    for spec, cap in zip(specs, captured):
        o = cap.outcome
        records.append(TaskRecord(
            flow=ctx.flow_name, run_id=ctx.run_id, step=spec.step, task_id=spec.task_id,
            attempt=spec.attempt, status="success" if o.ok else "failed",
            artifacts={n: loc.info() for n, loc in cap.record_artifacts.items()},
            foreach_stack=[list(f) for f in spec.foreach_stack],
            foreach_num_splits=o.num_splits,
            transition={"steps": list(o.next_steps), "foreach": o.foreach},
            parents=list(spec.parents), inputs=cap.inputs_read,
            code_hash=ctx.code_hashes.get(spec.step, ""), params=_jsonable(ctx.params),
            user=ctx.user, node=o.node, started_at=o.started_at, finished_at=o.finished_at,
            exception=_exception_json(o.error), origin_pathspec=None))
    ds.write_tasks(records, bundle=len(records) > 1)
    for spec, cap in zip(specs, captured):
        for stream in ("stdout", "stderr"):
            text = getattr(cap, stream)
            if text:
                ds.save_log(ctx.run_id, spec.step, spec.task_id, spec.attempt, stream, text)


def _exception_json(error: dict | None) -> dict | None:
    if not error:
        return None
    return {"type": error["type"], "message": error["message"], "traceback": error["traceback"]}


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v)
        if isinstance(v, (str, bytes)) and len(v) > 200:
            out[k] = f"<{type(v).__name__} of {len(v)} chars>"
    return out


class _Tee(io.TextIOBase):
    """Copies a task's output to a buffer (for the datastore) and to the real stream, with a
    [step/task] prefix at the start of each line."""

    def __init__(self, real, prefix: str):
        self.real = real
        self.prefix = prefix
        self.buffer_ = io.StringIO()
        self._at_line_start = True

    def write(self, text: str) -> int:
        self.buffer_.write(text)
        if self.real is not None:
            out = []
            for piece in text.splitlines(keepends=True):
                if self._at_line_start:
                    out.append(self.prefix)
                out.append(piece)
                self._at_line_start = piece.endswith("\n")
            try:
                self.real.write("".join(out))
            except (ValueError, OSError):
                pass
        return len(text)

    def flush(self) -> None:
        if self.real is not None:
            try:
                self.real.flush()
            except (ValueError, OSError):
                pass

    def getvalue(self) -> str:
        return self.buffer_.getvalue()

    def isatty(self) -> bool:
        return False


@contextmanager
def _captured_output(prefix: str):
    old_out, old_err = sys.stdout, sys.stderr
    out, err = _Tee(old_out, prefix), _Tee(old_err, prefix)
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        out.flush()
        err.flush()
        sys.stdout, sys.stderr = old_out, old_err


def slice_items(ctx: RunContext, loc: ArtifactLoc, chunk: int, num_chunks: int):
    """Cut a foreach variable into `num_chunks` lists of `chunk` items (the last may be
    shorter), so each split batch receives only its own items."""
    os.environ.update(ctx.datastore_env)
    ds_factory = lambda: datastore_for(ctx.datastore_url, ctx.flow_name)  # noqa: E731
    value = ArtifactLoader(ds_factory)(loc)
    if not isinstance(value, (list, tuple, range)) and not _is_ndarray(value):
        value = list(value)
    chunks = [list(value[i * chunk:(i + 1) * chunk]) for i in range(num_chunks)]
    return chunks[0] if num_chunks == 1 else tuple(chunks)
