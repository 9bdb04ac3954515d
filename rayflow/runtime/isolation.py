"""Each task starts from the process state a fresh process would have, in a reused worker.

Metaflow runs every task in a new process: a step that sets a module global, an environment
variable or the working directory leaves nothing behind for the next task. rayflow's workers
are reused (a warm worker, a batch of foreach splits in one process), so `TaskIsolation` puts
back, around every task of a batch:

- the flow module's globals as they were right after its import (`module_baseline`, taken
  once per worker): names the task rebound are bound again to their first value, names it
  added are removed;
- values of the flow module's globals changed in place (a module-level list appended to, a
  dict filled, an object's attribute set): each global that holds data (not a module, class,
  function, constant, rayflow's own objects or a random generator) and pickles to at most
  SNAPSHOT_LIMIT bytes is pickled once after the import (`GlobalsSnapshot`). Before a task, a
  value that no longer equals its snapshot (by `==`, else by its pickled bytes) is bound
  again to a fresh copy of it. Before the first task of every batch (an ordinary step's task
  is a batch of its own) every such global is checked; between the splits of one batch, only
  those of at most SPLIT_CHECK_LIMIT pickled bytes, so that a split pays microseconds, not a
  comparison of a big table. So: a foreach split that changes in place a global of more than
  SPLIT_CHECK_LIMIT bytes leaves the change to the later splits of its batch (the next batch
  starts from the snapshot). Not put back at all: globals bigger than SNAPSHOT_LIMIT (a model
  or table loaded at import: copying it per task would cost what loading it does), values
  that cannot be pickled (locks, open files, clients, connections), objects of torch,
  tensorflow, keras or jax (models, tensors), random generators (a
  fresh process would seed them anew: putting them back would repeat their numbers in every
  task), and the globals of modules other than the flow's;
- os.environ, the working directory and sys.argv as the batch started, restored after each
  task, with `sys.argv[0]` the flow file, as Metaflow's `python flow.py step ...` has it.

An @actor_pool's setup runs once per process, for all the tasks the actor serves: the globals
it binds or changes in the flow module are kept for the process (`kept_for_the_process`).

It is cheap enough to run for each of a 100,000-split batch: an unchanged environment and
module cost two dictionary comparisons, and each small data global one `==` (see
`isolation_cost_us`).
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import types
from contextlib import contextmanager

_BASELINES: dict[int, dict] = {}  # id(module namespace) -> its baseline (the module lives on)
_SNAPSHOTS: dict[int, GlobalsSnapshot] = {}  # id(module namespace) -> its data globals

SNAPSHOT_LIMIT = 1 << 20      # pickled bytes of a global that is put back at all
SPLIT_CHECK_LIMIT = 64 << 10  # ... and checked between the splits of a batch too


def module_baseline(module) -> dict | None:
    """The flow module's namespace right after its import: what every task starts from."""
    if module is None:
        return None
    baseline = _BASELINES[id(module.__dict__)] = dict(module.__dict__)
    _SNAPSHOTS[id(module.__dict__)] = GlobalsSnapshot(module.__dict__)
    return baseline


@contextmanager
def kept_for_the_process(namespace: dict | None):
    """What the block binds or changes in `namespace` (a flow module's globals) stays for the
    process's next tasks: it joins the module's baseline and snapshot."""
    before = dict(namespace) if namespace is not None else None
    yield
    baseline = _BASELINES.get(id(namespace)) if namespace is not None else None
    if baseline is not None:
        missing = object()
        baseline.update({k: v for k, v in namespace.items() if before.get(k, missing) is not v})
        _SNAPSHOTS[id(namespace)] = GlobalsSnapshot(namespace)


class _TooBig(Exception):
    pass


class _Bounded(io.BytesIO):
    """A pickle's output that stops the pickler once it passes `limit` bytes."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def write(self, data) -> int:
        if self.tell() + len(data) > self.limit:
            raise _TooBig
        return super().write(data)


def _pickled(value, limit: int = SNAPSHOT_LIMIT) -> bytes | None:
    """`value` pickled, or None when it cannot be or would take more than `limit` bytes."""
    out = _Bounded(limit)
    try:
        pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except Exception:  # noqa: BLE001 - _TooBig, or anything a value's pickling raises
        return None
    return out.getvalue()


_NOT_DATA = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType,
             types.MethodType, types.MethodWrapperType, types.WrapperDescriptorType,
             classmethod, staticmethod, property, str, bytes, int, float, complex, bool,
             type(None), range, type(Ellipsis))


# rayflow's own objects (`current`, parameters); models and tensors of the deep-learning
# libraries, whose pickling copies all their weights before a size limit can stop it.
_LEFT_ALONE = ("rayflow", "metaflow", "ray", "torch", "tensorflow", "keras", "jax", "jaxlib")


def _is_data(name: str, value) -> bool:
    """A global whose value a task may change in place and a fresh process would not see."""
    if name.startswith("__") and name.endswith("__") or isinstance(value, _NOT_DATA):
        return False
    cls = type(value)
    if cls.__module__.partition(".")[0] in _LEFT_ALONE:
        return False
    if _is_random_generator(value):
        return False
    try:  # arrays and frames that say their size: none pickled only to find it too big
        if int(getattr(value, "nbytes", 0) or 0) > SNAPSHOT_LIMIT:
            return False
    except Exception:  # noqa: BLE001 - an nbytes of another meaning
        pass
    if isinstance(value, (tuple, frozenset)):
        try:
            hash(value)
            return False  # made of immutable values only
        except TypeError:
            return True
    return True


def _is_random_generator(value) -> bool:
    import random

    if isinstance(value, random.Random):
        return True
    cls = type(value)
    return cls.__module__.startswith("numpy.random") and cls.__name__ in (
        "Generator", "RandomState", "BitGenerator", "PCG64", "MT19937", "Philox", "SFC64")


class GlobalsSnapshot:
    """The data globals of a module, pickled: each task of a reused worker gets them back
    as imported (see the module's docstring)."""

    def __init__(self, namespace: dict):
        # name -> (pickled bytes, an unpickled copy to compare with by ==, checked per split)
        self.entries: dict[str, tuple[bytes, object, bool]] = {}
        for name, value in list(namespace.items()):
            if not _is_data(name, value):
                continue
            blob = _pickled(value)
            if blob is None:
                continue
            try:
                copy = pickle.loads(blob)
            except Exception:  # noqa: BLE001 - a value that does not unpickle: left alone
                continue
            self.entries[name] = (blob, copy, len(blob) <= SPLIT_CHECK_LIMIT)

    def put_back(self, namespace: dict, baseline: dict, every: bool) -> None:
        """Bind each global changed in place since the snapshot to a fresh copy of it (in
        `namespace` and in the `baseline` the next tasks are restored to). `every`: also the
        globals too big to check between the splits of a batch."""
        for name, (blob, copy, small) in self.entries.items():
            if not (every or small):
                continue
            value = namespace.get(name, copy)
            if _unchanged(value, copy, blob):
                continue
            fresh = pickle.loads(blob)
            namespace[name] = baseline[name] = fresh


def _unchanged(value, copy, blob: bytes) -> bool:
    try:
        if (value == copy) is True:  # in C for plain containers
            return True
    except Exception:  # noqa: BLE001 - an __eq__ that fails (numpy arrays inside)
        pass
    # Objects equal only to themselves (most classes), arrays: by their pickled bytes.
    return _pickled(value, len(blob)) == blob


def _environ_data():
    """os.environ's own (encoded) mapping, compared in C; a copy of it where that is absent."""
    data = getattr(os.environ, "_data", None)
    return data if isinstance(data, dict) else dict(os.environ)


class TaskIsolation:
    """The state of one batch's process that each of its tasks starts from."""

    def __init__(self, module=None, baseline: dict | None = None):
        self.globals = module.__dict__ if module is not None and baseline is not None else None
        self.baseline = baseline
        self.first = True  # the batch's first task: every snapshot is checked
        self.environ = dict(_environ_data())
        self.cwd = _getcwd()
        self.argv = list(sys.argv)
        flow_file = getattr(module, "__file__", None) if module is not None else None
        self.task_argv = [flow_file] if flow_file else list(self.argv)

    def before_task(self) -> None:
        if self.globals is not None:
            restore_namespace(self.globals, self.baseline)
            snapshot = _SNAPSHOTS.get(id(self.globals))
            if snapshot is not None and snapshot.entries:
                snapshot.put_back(self.globals, self.baseline, self.first)
            self.first = False
        sys.argv = list(self.task_argv)

    def after_task(self) -> None:
        restore_environ(self.environ)
        if self.cwd is not None and _getcwd() != self.cwd:
            try:
                os.chdir(self.cwd)
            except OSError:
                pass
        sys.argv = self.argv


def restore_namespace(namespace: dict, baseline: dict) -> None:
    """Bind every name of `baseline` to its value again, and drop names added since. Never
    empties the namespace meanwhile (another thread may be reading it)."""
    try:
        # In C, and by identity first: a value compared with __eq__ is one the task rebound.
        if namespace == baseline:
            return
    except Exception:  # noqa: BLE001 - an __eq__ that fails (numpy arrays): restore anyway
        pass
    namespace.update(baseline)
    for name in namespace.keys() - baseline.keys():
        namespace.pop(name, None)


def restore_environ(saved: dict) -> None:
    """Make os.environ what it was when `saved` (a copy of `_environ_data()`) was taken,
    through os.environ itself so that the process's C environment follows."""
    data = _environ_data()
    if data == saved:
        return
    env = os.environ
    decode = getattr(env, "decodekey", None) if data is getattr(env, "_data", None) else None
    unwrap = getattr(env, "decodevalue", None) if decode is not None else None
    for key in [k for k in data if k not in saved]:
        env.pop(decode(key) if decode else key, None)
    for key, value in saved.items():
        if data.get(key) != value:
            env[decode(key) if decode else key] = unwrap(value) if unwrap else value


def _getcwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed under us
        return None


def isolation_cost_us(tasks: int = 100_000, globals_count: int = 200,
                      data_globals: int = 4) -> float:
    """Microseconds `before_task` + `after_task` take per task, for a module of
    `globals_count` names, `data_globals` of them small lists and dicts (put back when
    changed in place), and nothing changed (the common case): a quick measurement for the
    docs and tests, not used at run time."""
    import time

    module = types.ModuleType("isolation_probe")
    for i in range(globals_count):
        value = i if i >= data_globals else (list(range(20)) if i % 2 else
                                             {str(k): k for k in range(20)})
        setattr(module, f"name{i}", value)
    iso = TaskIsolation(module, module_baseline(module))
    started = time.perf_counter()
    for _ in range(tasks):
        iso.before_task()
        iso.after_task()
    return (time.perf_counter() - started) / tasks * 1e6
