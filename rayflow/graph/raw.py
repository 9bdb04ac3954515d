"""The graph as Metaflow's `output-raw` prints it: every step's fields in graph order (text),
or with `--json` its steps by name and its structure as nested lists (Metaflow's
`FlowGraph.output_steps()`: a split is followed by a list of its branches, each a list).

Only presentation lives here. It never imports ray.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rayflow.graph.nodes import FlowGraph, StepNode


def _names(names) -> str:
    return ", ".join(f"[{n}]" for n in names)


def node_text(node: StepNode, graph: FlowGraph) -> str:
    """One step, in the layout of Metaflow's graph node."""
    in_foreach = any(graph[p].foreach_param is not None for p in node.split_parents
                     if p in graph)
    join = f"[{node.matching_join}]" if node.matching_join else None
    return "\n".join([
        f"*[{node.name} {_metaflow_type(node)} ({node.source_file} line {node.func_lineno})]*",
        f"    in_funcs={_names(node.in_funcs)}",
        f"    out_funcs={_names(node.out_funcs)}",
        f"    split_parents={_names(node.split_parents)}",
        f"    split_branches={_names(node.split_branches)}",
        f"    matching_join={join}",
        f"    is_inside_foreach={in_foreach}",
        f"    decorators={' | '.join(node.decorators)}",
        f"    num_args={node.num_args}",
        f"    has_tail_next={node.next_lineno is not None} (line {node.next_lineno})",
        f"    foreach_param={node.foreach_param}",
        f"    condition={node.condition}",
        f"    -> {_names(node.out_funcs)}"])


def _metaflow_type(node: StepNode) -> str:
    """Metaflow's node types: split (static), foreach, split-switch, join, linear, start,
    end."""
    return {"split-static": "split", "split-foreach": "foreach"}.get(node.type, node.type)


def raw_text(graph: FlowGraph) -> str:
    return "\n".join(node_text(node, graph) for node in graph)


def _step_dict(node: StepNode) -> dict:
    out = {"name": node.name, "type": node.type, "line": node.func_lineno,
           "source_file": node.source_file, "doc": node.doc,
           "decorators": [{"name": d} for d in node.decorators], "next": list(node.out_funcs)}
    if node.foreach_param is not None:
        out["foreach_artifact"] = node.foreach_param
    if node.is_switch:
        out["condition"] = node.condition
        out["switch_cases"] = {str(value): step for value, step in node.switch_cases}
    if node.matching_join:
        out["matching_join"] = node.matching_join
    return out


def _block(graph: FlowGraph, start: str, stop: str | None, steps: dict) -> list:
    """The steps from `start` up to (not including) `stop`; a split adds the list of its
    branches' blocks and goes on at its join."""
    out: list = []
    name: str | None = start
    while name is not None and name != stop and name not in steps:
        node = graph[name]
        steps[name] = _step_dict(node)
        out.append(name)
        if node.is_split and node.matching_join:
            out.append([_block(graph, s, node.matching_join, steps) for s in node.out_funcs])
            name = node.matching_join
        elif node.is_switch:
            out.append([_block(graph, s, stop, steps) for s in node.out_funcs if s != name])
            name = None
        else:
            name = node.out_funcs[0] if node.out_funcs else None
    return out


def graph_info(graph: FlowGraph, flow_cls=None) -> dict:
    """Metaflow's `current.graph` (its `_graph_info`): the file, the end steps, the
    parameters and constants, the steps and the structure of `graph`."""
    from rayflow.parameters import flow_constants, flow_parameters

    params = flow_parameters(flow_cls) if flow_cls is not None else []
    constants = flow_constants(flow_cls) if flow_cls is not None else {}
    return {"file": os.path.basename(graph.file), "start_step": "start", "end_step": "end",
            "parameters": [{"name": p.artifact_name, "type": type(p).__name__}
                           for p in params],
            "constants": [{"name": n, "type": type(v).__name__} for n, v in constants.items()],
            **raw_dict(graph), "doc": graph.doc, "decorators": [], "extensions": {}}


def raw_dict(graph: FlowGraph) -> dict:
    """{"graph": steps by name, "graph_structure": nested lists}, as Metaflow's JSON."""
    steps: dict = {}
    structure = _block(graph, "start", "end", steps) if "start" in graph else []
    if "end" in graph:
        steps["end"] = _step_dict(graph["end"])
        structure.append("end")
    return {"graph": steps, "graph_structure": structure}
