"""The views a Task offers onto its artifacts: `task.data.x`, `task.artifacts.x`, `task.exception`.

`MetaflowData` loads an artifact's bytes only when its attribute is read, because a task may
hold gigabytes of tables and a notebook usually wants one value. `MetaflowArtifacts` hands out
the `DataArtifact` objects themselves (for `.sha`, `.size`, ...), without loading anything.
Both are built over any task-like object with `_artifact_names()` and `[name]`, so this module
depends on no other client class. It must never import ray.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rayflow.client.base import preview

_OWN_ATTRS = frozenset({"_task"})


class _TaskView:
    """Attribute access to a task's artifacts; subclasses say what an attribute returns."""

    def __init__(self, task: Any):
        self._task = task

    def _value(self, name: str) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        # Dunder and own names must fail fast: copy/pickle probe them before __init__ runs.
        if name.startswith("__") or name in _OWN_ATTRS:
            raise AttributeError(name)
        if name not in self._task._artifact_names():
            raise AttributeError(
                f"{self._task!r} has no artifact '{name}'. Its artifacts: "
                f"{preview(self._task._artifact_names(), limit=30)}. If the step sets "
                f"self.{name} only on some paths, check {self._task!r}.successful and "
                f"{self._task!r}.exception."
            )
        return self._value(name)

    def __contains__(self, name: object) -> bool:
        return name in self._task._artifact_names()

    def __len__(self) -> int:
        return len(self._task._artifact_names())

    def __dir__(self) -> list[str]:  # tab completion in notebooks
        return list(self._task._artifact_names())


class MetaflowData(_TaskView):
    """`task.data`: artifact *values*, each loaded from the datastore on first access."""

    def _value(self, name: str) -> Any:
        return self._task[name].data

    def __repr__(self) -> str:
        return f"<MetaflowData: {', '.join(self._task._artifact_names())}>"


class MetaflowArtifacts(_TaskView):
    """`task.artifacts`: the DataArtifact objects, so `task.artifacts.x.sha` loads no bytes."""

    def _value(self, name: str) -> Any:
        return self._task[name]

    def __iter__(self) -> Iterator[Any]:  # like Metaflow's namedtuple; loads no values
        return (self._task[name] for name in self._task._artifact_names())

    def __repr__(self) -> str:
        return f"<MetaflowArtifacts: {', '.join(self._task._artifact_names())}>"


@dataclass(frozen=True)
class TaskException:
    """The exception a task's step raised, as the task record keeps it (it is not re-raised:
    the original class may not even be importable where the client runs)."""

    type: str
    message: str
    traceback: str

    @classmethod
    def from_record(cls, exc: dict | None) -> TaskException | None:
        if not exc:
            return None
        return cls(
            type=str(exc.get("type", "Exception")),
            message=str(exc.get("message", "")),
            traceback=str(exc.get("traceback", "") or ""),
        )

    # Metaflow's names: the exception's message, and its traceback.
    @property
    def exception(self) -> str:
        return self.message

    @property
    def stacktrace(self) -> str:
        return self.traceback

    def __str__(self) -> str:
        head = f"{self.type}: {self.message}" if self.message else self.type
        tb = self.traceback.rstrip()
        if not tb:
            return head
        # A Python traceback already ends with "Type: message"; do not print it twice.
        return tb if tb.endswith(head) else f"{tb}\n{head}"
