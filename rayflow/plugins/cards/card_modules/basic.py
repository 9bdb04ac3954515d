"""Metaflow's `metaflow.plugins.cards.card_modules.basic` path: the built-in card types, the
graph a card draws its DAG from (`transform_flow_graph`), and `DefaultCardJSON`, the default
card's content as JSON (what Metaflow's default card renders its page from).

A card receives the run's `_graph_info` as `graph=` (rayflow.graph.info): its `steps`, and its
`start_step` and `end_step`, which need not be named start and end. `transform_flow_graph`
also takes the older shape, a dict of steps alone, where the steps named start and end are
the endpoints.
"""

from __future__ import annotations

import inspect
import json

from rayflow.cards.base import MetaflowCard
from rayflow.cards.builtin import BlankCard, DefaultCard, ErrorCard, TaskSpecCard
from rayflow.cards.components import PageComponent

_DAG_TYPES = {"linear": "linear", "start": "start", "end": "end", "join": "join",
              "split": "split", "split-static": "split", "split-foreach": "foreach",
              "split-parallel": "foreach", "split-switch": "switch"}


def transform_flow_graph(graph: dict) -> dict:
    """`{"steps": {name: {type, box_next, box_ends, next, doc, ...}}, "start_step",
    "end_step"}`: the graph as the DAG component draws it."""
    if all(k in graph for k in ("steps", "start_step", "end_step")):
        steps, start, end = graph["steps"], graph["start_step"], graph["end_step"]
    else:
        steps = graph
        start = "start" if "start" in graph else None
        end = "end" if "end" in graph else None
    out = {}
    for name, info in steps.items():
        kind = _DAG_TYPES.get(info.get("type"), "unknown")
        node = {"type": kind,
                "box_next": info.get("type") not in ("linear", "join"),
                "box_ends": info.get("matching_join"),
                "next": list(info.get("next", [])),
                "doc": info.get("doc", "")}
        if kind == "switch":
            node.update({k: info[k] for k in ("condition", "switch_cases") if k in info})
        out[name] = node
    return {"steps": out, "start_step": start, "end_step": end}


def _section(title: str, *contents) -> dict:
    return {"type": "section", "title": title, "contents": list(contents)}


def _artifact(name: str, value, only_repr: bool) -> dict:
    text = repr(value) if only_repr or not isinstance(value, (str, int, float, bool)) else value
    return {"type": "artifact", "name": name, "data": text}


def _artifacts(task, skip=()) -> list[dict]:
    out = []
    for art in task:
        if art.id in skip or art.id == "name":
            continue
        try:
            out.append(_artifact(art.id, art.data, True))
        except Exception as exc:  # noqa: BLE001 - e.g. a class this reader lacks
            out.append(_artifact(art.id, f"<not loaded: {type(exc).__name__}: {exc}>", False))
    return out


def _when(value) -> str | None:
    return value.isoformat() if value is not None else None


class DefaultCardJSON(MetaflowCard):
    """The default card's content as a JSON string: the task's metadata, its code, the flow's
    parameters, its artifacts and the flow's DAG, after what the step appended."""

    type = "default_json"

    def __init__(self, options=None, components=None, graph=None, graph_info=None, flow=None,
                 **kwargs):
        options = {"only_repr": True, **(options or {})}
        source = graph_info if graph_info is not None else graph
        super().__init__(options, components, None if source is None else
                         transform_flow_graph(source), flow, **kwargs)

    def _code(self, task) -> list[dict]:
        func = getattr(self._flow, task.parent.id, None) if self._flow is not None else None
        try:
            code = inspect.getsource(func) if func is not None else None
        except (OSError, TypeError):
            code = None
        return [] if code is None else [_section("Task Code", {"type": "pythonCode",
                                                              "data": code})]

    def _parameters(self, task) -> tuple[list[dict], set]:
        run = task.parent.parent
        if "_parameters" not in run:  # a spun task's run has none
            return [{"type": "title", "text": "No Parameters"}], set()
        params = _artifacts(run["_parameters"].task)
        return params or [{"type": "title", "text": "No Parameters"}], \
            {p["name"] for p in params}

    def render(self, task) -> str:
        run = task.parent.parent
        params, param_names = self._parameters(task)
        info = {"Task Created On": _when(task.created_at),
                "Task Finished On": _when(task.finished_at),
                "Tags": ", ".join(sorted(run.tags)), "Attempt": task.current_attempt}
        components = [c.render() if hasattr(c, "render") else c for c in self._components]
        components += [
            _section("Task Metadata", {"type": "table", "headers": list(info),
                                       "data": [list(info.values())], "vertical": True}),
            *self._code(task),
            _section("Flow Parameters", *params),
            _section("Artifacts", *(_artifacts(task, param_names) or
                                    [{"type": "title", "text": "No Artifacts"}])),
            _section("DAG", {"type": "dag", "data": self._graph}),
        ]
        metadata = {"version": 1, "template": "defaultCardTemplate",
                    "pathspec": task.pathspec, "created_at": _when(task.created_at),
                    "finished_at": _when(task.finished_at)}
        return json.dumps({"metadata": metadata, "components": components}, default=str)


__all__ = ["BlankCard", "DefaultCard", "DefaultCardJSON", "ErrorCard", "PageComponent",
           "TaskSpecCard", "transform_flow_graph"]
