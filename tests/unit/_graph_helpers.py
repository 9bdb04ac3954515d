"""Test stand-ins for `@step` and step decorators, so graph tests never import rayflow.flowspec
(or ray). They follow the contract in docs/INTERNALS.md."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path


def step(func=None, *, start=False, end=False):
    def mark(func):
        func.is_step = True
        func.decorators = []
        func.name = func.__name__
        func.is_start_step = start
        func.is_end_step = end
        return func
    return mark if func is None else mark(func)


@dataclass
class FakeDecorator:
    name: str
    attributes: dict = field(default_factory=dict)


def deco(name: str, **attributes):
    """A step decorator like @resources(...): sits above @step and appends itself."""
    def apply(func):
        func.decorators.append(FakeDecorator(name, attributes))
        return func
    return apply


def load_module(path: Path):
    """Import a flow file by path, the way the CLI loads a user's flow."""
    name = f"_graph_test_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def marked_line(path: Path, marker: str) -> int:
    """The 1-based line of `path` that carries the comment `# expect: <marker>`."""
    lines = path.read_text().splitlines()
    hits = [i + 1 for i, text in enumerate(lines) if text.rstrip().endswith(f"# expect: {marker}")]
    assert len(hits) == 1, f"expected one '# expect: {marker}' in {path}, found {hits}"
    return hits[0]
