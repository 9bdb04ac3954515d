"""What triggered a run (Metaflow's `metaflow.events`): `MetaflowEvent` and `Trigger`.

A run started by hand has no trigger: `current.trigger` and `Run.trigger` are None. A
`Trigger` can also be built from finished runs (`Trigger.from_runs`), as a flow deployed with
`@trigger_on_finish` sees the runs that started it: one event per run, named
`metaflow.<Flow>.<end step>` (and `metaflow.<Flow>.end` too when the end step has another
name, so code that waits for `.end` still matches), whose id is the end task's pathspec.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator
from datetime import datetime
from typing import Any

MetaflowEvent = namedtuple("MetaflowEvent", ["name", "id", "timestamp", "type"])
MetaflowEvent.__doc__ = """One event that triggered a run: its `name`, unique `id`, `timestamp`
(a datetime) and `type` ("event", or "run" for a run that finished)."""


def _as_datetime(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value)
    return value


def _sort_key(meta: dict) -> float:
    stamp = meta.get("timestamp")
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return float(stamp)
    return float("-inf")


class Trigger:
    """The events that triggered a run, newest first; for events that are runs, the runs."""

    def __init__(self, _meta: list[dict] | None = None):
        meta = sorted(_meta or [], key=_sort_key, reverse=True)
        self._events = [MetaflowEvent(name=m.get("name"), id=m.get("id"),
                                      timestamp=_as_datetime(m.get("timestamp")),
                                      type=m.get("type")) for m in meta]
        self._runs: list | None = None

    @classmethod
    def from_runs(cls, run_objs: list) -> Trigger:
        """A trigger whose events are these runs' ends (runs that have no end task yet are
        left out)."""
        runs = sorted(run_objs, key=lambda r: _sort_key({"timestamp": r.finished_at}),
                      reverse=True)
        valid, meta = [], []
        for run in runs:
            end_task = run.end_task
            if end_task is None:
                continue
            valid.append(run)
            flow, end_step = run.parent.id, end_task.parent.id
            names = [f"metaflow.{flow}.{end_step}"]
            if end_step != "end":
                names.append(f"metaflow.{flow}.end")
            meta += [{"type": "run", "timestamp": run.finished_at, "name": name,
                      "id": end_task.pathspec} for name in names]
        trigger = cls(meta)
        trigger._runs = valid
        return trigger

    @property
    def event(self) -> MetaflowEvent | None:
        """The latest event."""
        return next(iter(self._events), None)

    @property
    def events(self) -> list[MetaflowEvent] | None:
        return list(self._events) or None

    @property
    def runs(self) -> list | None:
        """The runs among the events (an event of type "run" has its end task as id)."""
        if self._runs is None:
            from .client import Run

            self._runs = [Run("/".join(e.id.split("/")[:2]), _namespace_check=False)
                          for e in self._events if e.type == "run"]
        return list(self._runs) or None

    @property
    def run(self):
        """The latest run among the events; None if none is a run."""
        return next(iter(self.runs or []), None)

    def __getitem__(self, key: str) -> Any:
        """The triggering run of flow `key`, or else the event named `key`."""
        if self.runs:
            for run in self.runs:
                if run.parent.id == key:
                    return run
        elif self.events:
            for event in self.events:
                if event.name == key:
                    return event
        raise KeyError(key)

    def __iter__(self) -> Iterator[MetaflowEvent]:
        return iter(self.events or [])

    def __contains__(self, ident: str) -> bool:
        try:
            return bool(self[ident])
        except KeyError:
            return False

    def __repr__(self) -> str:
        return f"Trigger({[e.name for e in self._events]})"


__all__ = ["MetaflowEvent", "Trigger"]
