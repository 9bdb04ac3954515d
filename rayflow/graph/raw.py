"""The graph as Metaflow's `output-raw` prints it: every step's fields in graph order (text),
or with `--json` its steps by name and its structure as nested lists (Metaflow's
`FlowGraph.output_steps()`: a split is followed by a list of its branches, each a list).

Only presentation lives here. It never imports ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rayflow.graph import info
from rayflow.graph.info import decorator_info

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
        f"    parallel_foreach={node.parallel_foreach}",
        f"    parallel_step={node.parallel_step}",
        f"    condition={node.condition}",
        f"    -> {_names(node.out_funcs)}"])


def _metaflow_type(node: StepNode) -> str:
    """Metaflow's node types: split (static), foreach, split-switch, join, linear, start,
    end."""
    return {"split-static": "split", "split-foreach": "foreach"}.get(node.type, node.type)


def raw_text(graph: FlowGraph) -> str:
    return "\n".join(node_text(node, graph) for node in graph)



def _decorators(graph: FlowGraph) -> dict[str, list[dict]]:
    return {node.name: [decorator_info(_Named(d)) for d in node.decorators] for node in graph}


class _Named:
    """A decorator known by its name only (the graph keeps names, not objects)."""

    def __init__(self, name: str):
        self.name = name


def graph_info(graph: FlowGraph, flow_cls=None) -> dict:
    """Metaflow's `current.graph` (its `_graph_info`): the file, the start and end steps, the
    parameters and constants, the steps and the structure of `graph`."""
    from rayflow.parameters import flow_constants, flow_parameters

    params = flow_parameters(flow_cls) if flow_cls is not None else []
    constants = flow_constants(flow_cls) if flow_cls is not None else {}
    return info.graph_info(
        graph, _decorators(graph),
        parameters=[(p.artifact_name, type(p).__name__) for p in params],
        constants=[(n, type(v).__name__) for n, v in constants.items()])


def raw_dict(graph: FlowGraph) -> dict:
    """{"graph": steps by name, "graph_structure": nested lists}, as Metaflow's JSON."""
    whole = info.graph_info(graph, _decorators(graph))
    return {"graph": whole["steps"], "graph_structure": whole["graph_structure"]}
