"""Render a FlowGraph for people (`describe`, like Metaflow's `show`) and for machines (`to_dict`,
behind `rayflow show --json`).

Only presentation lives here: nothing in this module decides anything about the graph. It never
imports ray.
"""

from __future__ import annotations

import textwrap
from dataclasses import fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rayflow.graph.nodes import FlowGraph, StepNode

# Parse issues are lint input, not a description of the flow.
_INTERNAL_FIELDS = {"parse_issues"}


def node_to_dict(node: StepNode) -> dict:
    out = {}
    for f in fields(node):
        if f.name in _INTERNAL_FIELDS:
            continue
        out[f.name] = _jsonable(getattr(node, f.name))
    return out


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def graph_to_dict(graph: FlowGraph) -> dict:
    """A JSON-able description. `steps` is a list in graph order (JSON objects have no order
    that every reader keeps)."""
    return {
        "name": graph.name,
        "file": graph.file,
        "lineno": graph.lineno,
        "doc": graph.doc,
        "start_step": graph.start_step,
        "end_step": graph.end_step,
        "steps": [node_to_dict(node) for node in graph],
    }


def _transition_text(node: StepNode) -> str:
    if node.is_end or not node.out_funcs:
        return ""
    targets = ", ".join(node.out_funcs)
    if node.is_switch:
        cases = ", ".join(f"{value!r} -> {step}" for value, step in node.switch_cases)
        return f"=> one of {targets} (switch on self.{node.condition}: {cases})"
    if node.parallel_foreach:
        size = node.num_parallel or "N"
        return f"=> {targets} (a @parallel gang of {size}, num_parallel)"
    if node.foreach_param is not None:
        return f"=> {targets} (foreach over self.{node.foreach_param})"
    return f"=> {targets}"


def _describe_node(node: StepNode) -> list[str]:
    header = f"Step {node.name}"
    if node.is_join and node.join_of:
        header += f" (join of {node.join_of})"
    if node.decorators:
        header += "  @" + " @".join(node.decorators)
    lines = [header]
    if node.doc:
        lines += [textwrap.indent(node.doc, "    ")]
    transition = _transition_text(node)
    if transition:
        lines.append(f"    {transition}")
    return lines


def describe_graph(graph: FlowGraph) -> str:
    """Human text: the flow's docstring, then each step with its docstring and `=> targets`."""
    lines = []
    if graph.doc:
        lines += [graph.doc, ""]
    for node in graph:
        lines += _describe_node(node) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_to_dot(graph: FlowGraph) -> str:
    """The graph in Graphviz's DOT language (`rayflow output-dot`, as Metaflow's): one box per
    step labelled with its name and type; foreach edges dashed and labelled with the foreach
    variable, switch edges labelled with their case."""
    lines = [f"digraph {_dot_id(graph.name)} {{", '  rankdir="TB";',
             '  node [shape="box", style="rounded"];']
    for node in graph:
        label = f"{node.name}\\n({node.type})"
        lines.append(f'  {_dot_id(node.name)} [label="{label}"];')
    for node in graph:
        cases = {}
        for value, target in node.switch_cases:
            cases.setdefault(target, []).append(repr(value))
        for target in node.out_funcs:
            attrs = []
            if node.parallel_foreach:
                attrs += ['style="dashed"', 'label="num_parallel"']
            elif node.foreach_param is not None:
                attrs += ['style="dashed"', f'label="foreach {node.foreach_param}"']
            elif target in cases:
                attrs.append(f'label={_dot_id(", ".join(cases[target]))}')
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            lines.append(f"  {_dot_id(node.name)} -> {_dot_id(target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
