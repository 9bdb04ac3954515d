"""Loading a flow file by path, the same way on the driver and in every worker.

A flow file is imported as a module named after its file (`hello.py` -> `hello`), with its
folder on sys.path so that its own imports work. If that name is taken by another file, a
suffix keeps the two apart. Workers receive the path and module name and import it once per
process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass

from ..exceptions import InvalidFlowError, ParameterError

_LOADED: dict[tuple[str, str], object] = {}


def module_name_for(path: str) -> str:
    path = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem if stem.isidentifier() else "flow_" + hashlib.md5(stem.encode()).hexdigest()[:8]
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") != path:
        name = f"{name}_{hashlib.md5(path.encode()).hexdigest()[:8]}"
    return name


def file_version(path: str) -> tuple:
    """What changes when the file is edited: its modification time and size."""
    try:
        st = os.stat(os.path.abspath(path))
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def import_flow_file(path: str, module_name: str | None = None):
    """Import the file at `path` (cached per process, until the file changes). A relative
    path is taken from the cwd, which on a cluster worker is the unpacked runtime_env
    working_dir."""
    path = os.path.abspath(path)
    module_name = module_name or module_name_for(path)
    key = (path, module_name, file_version(path))
    module = _LOADED.get(key)
    if module is not None:
        sys.modules[module_name] = module
        return module
    if not os.path.isfile(path):
        raise InvalidFlowError(f"Flow file {path!r} does not exist. Check the path.")
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:  # the flow's own file, or one it imports: file:line, no trace
        sys.modules.pop(module_name, None)
        raise InvalidFlowError(_syntax_message(path, exc)) from None
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    _LOADED[key] = module
    return module


def _syntax_message(path: str, exc: SyntaxError) -> str:
    where = display_path(exc.filename or path)
    line = f":{exc.lineno}" if exc.lineno else ""
    text = (exc.text or "").strip()
    shown = f" in `{text[:120]}`" if text else ""
    what = "" if os.path.abspath(exc.filename or path) == path else \
        f" (imported by {display_path(path)})"
    return (f"{where}{line}{what}: {type(exc).__name__}: {exc.msg}{shown}. Fix the file and "
            f"run again.")


def find_flow_class(module, class_name: str | None = None):
    """The FlowSpec subclass defined in `module` (by name when there are several)."""
    from ..flowspec import FlowSpec

    flows = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, FlowSpec) and obj is not FlowSpec
             and obj.__module__ == module.__name__]
    if class_name:
        for cls in flows:
            if cls.__name__ == class_name:
                return cls
        raise InvalidFlowError(
            f"{module.__file__} has no flow class named {class_name!r}; it defines "
            f"{[c.__name__ for c in flows] or 'none'}.")
    if not flows:
        raise InvalidFlowError(
            f"{module.__file__} defines no flow. A flow is a class that subclasses FlowSpec "
            f"(from rayflow import FlowSpec, step) and has @step methods.")
    if len(flows) > 1:
        names = ", ".join(c.__name__ for c in flows)
        raise InvalidFlowError(
            f"{module.__file__} defines several flows ({names}). Pick one with --flow NAME.")
    return flows[0]


@dataclass
class LoadedFlow:
    file: str
    module_name: str
    cls: type
    graph: object

    @property
    def name(self) -> str:
        return self.cls.__name__


def load_flow(path: str, class_name: str | None = None, module_name: str | None = None,
              lint_it: bool = True, mutate: bool = False) -> LoadedFlow:
    """Import, build the graph and (by default) lint. Never starts Ray. With `mutate`, the
    flow's mutators are applied first, with its configs' default values (what `show` and
    `check` describe)."""
    from ..graph import FlowGraph, lint

    path = os.path.abspath(path)
    module = import_flow_file(path, module_name)
    cls = find_flow_class(module, class_name)
    if mutate:
        cls = with_default_configs(cls)
    graph = FlowGraph.from_class(cls)
    if lint_it:
        lint(graph)
    return LoadedFlow(path, module.__name__, cls, graph)


def with_default_configs(cls):
    """The flow as its mutators leave it for its configs' values from the environment or
    their defaults; the class itself when it has no mutator."""
    from ..config import apply_configs, config_values_of, resolve_configs
    from ..user_decorators.process import has_user_decorators, mutated_class

    if not has_user_decorators(cls):
        return cls
    try:
        values = resolve_configs(cls)
    except ParameterError:  # a required config with no value: the flow as written
        return cls
    apply_configs(cls, values)
    return mutated_class(cls, config_values_of(cls))


_GRAPHS: dict[type, object] = {}


def graph_of(cls):
    from ..graph import FlowGraph

    graph = _GRAPHS.get(cls)
    if graph is None:
        graph = _GRAPHS[cls] = FlowGraph.from_class(cls)
    return graph


def step_code_hashes(cls, graph) -> dict[str, str]:
    """A hash of each step's source, for lineage and for the cache of unchanged steps."""
    out = {}
    for name in graph.steps:
        try:
            src = inspect.getsource(getattr(cls, name))
        except (OSError, TypeError):
            src = name
        out[name] = hashlib.sha256(src.encode()).hexdigest()[:16]
    return out


def display_path(path: str) -> str:
    """A path as short as it stays clear: relative below the cwd, absolute elsewhere."""
    if not path:
        return "<flow file>"
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def flow_code_hash(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]
