"""The flow's graph as Metaflow's `_graph_info` artifact describes it: what every task of a run
carries, what the client reads the start and end steps and each step's neighbours from, and
what a card draws its DAG from.

Its shape is Metaflow's (2.19): `start_step`, `end_step`, `steps` (name -> type, next steps,
doc, line, decorators, and for a split its `matching_join`), `graph_structure` (the steps in
order, each split's branches as nested lists), `parameters`, `constants`, `doc`, `file`. Only
plain JSON-like values: it is pickled into every run. This module never imports ray.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from rayflow.graph.nodes import FlowGraph, StepNode


def to_pod(value):
    """`value` as plain data (dicts, lists, str, numbers, bool, None); anything else as str."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): to_pod(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_pod(v) for v in value]
    return str(value)


def decorator_info(deco, statically_defined: bool = True, inserted_by=None) -> dict:
    """One decorator as `_graph_info` lists it: its attributes as it shows them (@secrets
    shows its sources' types and ids, never their options)."""
    shown = getattr(deco, "shown_attributes", None)
    attributes = shown() if callable(shown) else getattr(deco, "attributes", {})
    return {"name": getattr(deco, "name", type(deco).__name__),
            "attributes": to_pod(attributes or {}),
            "statically_defined": statically_defined, "inserted_by": inserted_by}


def _step_dict(node: StepNode, decorators: list[dict]) -> dict:
    out = {
        "name": node.name,
        # A num_parallel split is a foreach inside rayflow; Metaflow names it split-parallel.
        "type": "split-parallel" if node.parallel_foreach else node.type,
        "line": node.func_lineno,
        "source_file": node.source_file,
        "doc": node.doc,
        "decorators": decorators,
        "next": list(node.out_funcs),
        "node_info": {},
    }
    if node.parallel_foreach:
        out["num_parallel"] = node.num_parallel
    elif node.type == "split-foreach":
        out["foreach_artifact"] = node.foreach_param
    elif node.type == "split-switch":
        out["condition"] = node.condition
        out["switch_cases"] = {to_pod(value): target for value, target in node.switch_cases}
    if node.matching_join:
        out["matching_join"] = node.matching_join
    return out


def graph_structure(graph: FlowGraph) -> list:
    """The steps from start to end in order; a split's branches as a list of lists, each
    running up to its join; a switch's cases likewise, each running up to the end."""
    start, end = graph.start_step, graph.end_step
    budget = [4 * len(graph) + 4]  # a malformed graph never loops forever

    def block(name: str | None, stop: str | None) -> list:
        out: list = []
        while name is not None and name != stop and name in graph and budget[0] > 0:
            budget[0] -= 1
            node = graph[name]
            out.append(name)
            if node.type in ("split-static", "split-foreach"):
                out.append([block(t, node.matching_join) for t in node.out_funcs])
                name = node.matching_join
            elif node.is_switch:
                out.append([block(t, stop) for t in node.out_funcs if t != name])
                name = stop
            else:
                name = node.out_funcs[0] if node.out_funcs else None
        return out

    if start is None or end is None:
        return []
    return ([] if start == end else block(start, end)) + [end]


def graph_info(graph: FlowGraph, decorators: Mapping[str, list[dict]] | None = None, *,
               parameters: Iterable[tuple[str, str]] = (),
               constants: Iterable[tuple[str, str]] = ()) -> dict:
    """Metaflow's `_graph_info` of `graph`. `decorators`: step -> `decorator_info` dicts (the
    decorators the run gives the step); `parameters` and `constants`: (name, type name)."""
    decorators = decorators or {}
    return {
        "file": os.path.basename(graph.file),
        "start_step": graph.start_step,
        "end_step": graph.end_step,
        "parameters": [{"name": n, "type": t} for n, t in parameters],
        "constants": [{"name": n, "type": t} for n, t in constants],
        "steps": {node.name: _step_dict(node, list(decorators.get(node.name, [])))
                  for node in graph},
        "graph_structure": graph_structure(graph),
        "doc": graph.doc,
        "decorators": [],
        "extensions": {},
    }
