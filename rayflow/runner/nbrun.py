"""`NBRunner(FlowClass)`: run a flow defined in a notebook cell (or in any code whose source
can be read), as Metaflow's NBRunner does.

The flow's source goes into a file of its own, which `Runner` then runs. In IPython or Jupyter
that source is the current cell up to the end of the flow's class (the cell that defines the
flow and calls NBRunner, as in Metaflow). Elsewhere, a test or a script, it is the class's own
source together with the import lines of the module that defined it.
"""

from __future__ import annotations

import ast
import inspect
import os
import tempfile
import textwrap
from typing import Any

from ..exceptions import RayflowException
from .runner import Runner


class NBRunnerInitializationError(RayflowException):
    headline = "NBRunner error"


def _ipython_cell() -> str | None:
    try:
        from IPython import get_ipython  # noqa: PLC0415 - only where IPython is present
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    history = shell.history_manager.input_hist_raw
    return history[-1] if history else None


def _flow_classes(tree: ast.Module) -> list[ast.ClassDef]:
    def names(base: ast.expr) -> str:
        return base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")

    return [node for node in tree.body if isinstance(node, ast.ClassDef)
            and any(names(b) == "FlowSpec" for b in node.bases)]


def source_from_cell(cell: str, flow_name: str) -> str:
    """The cell up to the end of the flow's class, then the line that runs it."""
    try:
        tree = ast.parse(cell)
    except SyntaxError as exc:
        raise NBRunnerInitializationError(
            f"The notebook cell that defines {flow_name} does not parse: {exc}.") from None
    classes = [c for c in _flow_classes(tree) if c.name == flow_name] or _flow_classes(tree)
    if not classes:
        raise NBRunnerInitializationError(
            f"The current cell defines no FlowSpec class. Define {flow_name} in the same "
            "cell that calls NBRunner, as in Metaflow.")
    lines = cell.splitlines()[: classes[0].end_lineno]
    return "\n".join(lines) + f"\n\n\nif __name__ == '__main__':\n    {classes[0].name}()\n"


def source_from_class(flow) -> str:
    """The class's own source, after the import lines of the module that defined it."""
    try:
        body = textwrap.dedent(inspect.getsource(flow))
    except (OSError, TypeError) as exc:
        raise NBRunnerInitializationError(
            f"Cannot read the source of {flow.__name__} ({exc}). NBRunner needs a flow "
            "defined in a notebook cell or in a Python file.") from None
    imports: list[str] = []
    try:
        module_source = inspect.getsource(inspect.getmodule(flow))
        tree = ast.parse(module_source)
        lines = module_source.splitlines()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and \
                    not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                imports.append("\n".join(lines[node.lineno - 1: node.end_lineno]))
    except (OSError, TypeError, SyntaxError):
        pass
    imports.append("from rayflow import *  # noqa: F403 - the names a flow uses")
    return ("\n".join(imports) + "\n\n\n" + body +
            f"\n\nif __name__ == '__main__':\n    {flow.__name__}()\n")


class NBRunner:
    """`run = NBRunner(FlowClass).nbrun(alpha=1)`; `nbresume()`; or `run()`, `async_run()`
    and the rest of `Runner`, then `cleanup()`."""

    def __init__(self, flow, show_output: bool = True, profile: str | None = None,
                 env: dict[str, str] | None = None, base_dir: str | None = None,
                 file_read_timeout: int = 3600, **kwargs: Any):
        if not isinstance(flow, type):
            raise NBRunnerInitializationError(
                f"NBRunner takes the flow class itself (NBRunner({type(flow).__name__})), "
                f"not {flow!r}.")
        self.flow = flow
        cell = _ipython_cell()
        source = source_from_cell(cell, flow.__name__) if cell and "FlowSpec" in cell \
            else source_from_class(flow)
        self.base_dir = base_dir or os.getcwd()
        fd, self.flow_file = tempfile.mkstemp(prefix=f"{flow.__name__}_", suffix=".py",
                                              dir=self.base_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        env = {**(env or {}), "JPY_PARENT_PID": ""}
        self.runner = Runner(self.flow_file, show_output=show_output, profile=profile, env=env,
                             cwd=self.base_dir, file_read_timeout=file_read_timeout, **kwargs)

    def nbrun(self, **kwargs: Any):
        """Run, wait, clean up, and return the client's `Run`."""
        result = self.runner.run(**kwargs)
        self.cleanup()
        return result.run

    def nbresume(self, **kwargs: Any):
        result = self.runner.resume(**kwargs)
        self.cleanup()
        return result.run

    def run(self, **kwargs: Any):
        return self.runner.run(**kwargs)

    def resume(self, **kwargs: Any):
        return self.runner.resume(**kwargs)

    async def async_run(self, **kwargs: Any):
        return await self.runner.async_run(**kwargs)

    async def async_resume(self, **kwargs: Any):
        return await self.runner.async_resume(**kwargs)

    def cleanup(self) -> None:
        """Remove the flow's file and everything its runs kept."""
        self.runner.cleanup()
        if os.path.exists(self.flow_file):
            os.remove(self.flow_file)
