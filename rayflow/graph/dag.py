"""`FlowSpec._graph`: the flow's graph with Metaflow's names (its `FlowGraph` of `DAGNode`s),
for flows that read it (`self._graph[current.step_name].parallel_step`, as Metaflow's own
@secrets test does).

A read-only view of rayflow's `FlowGraph`: `graph[name]`, `name in graph`, iteration,
`nodes`, `sorted_nodes`, `name`, `doc`, `start_step`, `end_step`; each node has Metaflow's
attribute names (`name`, `type`, `in_funcs`, `out_funcs`, `split_parents`, `split_branches`,
`matching_join`, `foreach_param`, `parallel_step`, `parallel_foreach`, `num_parallel`,
`is_inside_foreach`, `decorators`, `doc`, `func_lineno`, `source_file`, `num_args`,
`has_tail_next`, `tail_next_lineno`, `condition`, `switch_cases`, ...). `type` is Metaflow's
internal one: `foreach` and `split` where `_graph_info` says `split-foreach` and
`split-static` (a num_parallel split is a `foreach` with `parallel_foreach`, as in Metaflow).
This module never imports ray.
"""

from __future__ import annotations

import weakref

from rayflow.graph.nodes import FlowGraph, StepNode

_TYPES = {"split-foreach": "foreach", "split-static": "split"}


class DAGNode:
    """One step, as Metaflow's `metaflow.graph.DAGNode` names its fields."""

    def __init__(self, node: StepNode, graph: FlowGraph, decorators: list):
        self.name = node.name
        self.type = _TYPES.get(node.type, node.type)
        self.out_funcs = list(node.out_funcs)
        self.in_funcs = sorted(node.in_funcs)
        self.split_parents = list(node.split_parents)
        self.split_branches = list(node.split_branches)
        self.matching_join = node.matching_join
        self.foreach_param = node.foreach_param
        self.condition = node.condition
        self.switch_cases = {value: target for value, target in node.switch_cases}
        self.num_args = node.num_args
        self.func_lineno = node.func_lineno
        self.source_file = node.source_file
        self.doc = node.doc
        self.decorators = decorators
        self.wrappers: list = []
        self.config_decorators: list = []
        self.has_tail_next = node.next_lineno is not None
        self.invalid_tail_next = False
        self.tail_next_lineno = node.next_lineno or 0
        self.is_start_step, self.is_end_step = node.is_start, node.is_end
        self.parallel_step = node.parallel_step
        self.parallel_foreach = node.parallel_foreach
        self.num_parallel = node.num_parallel
        self.node_info: dict = {}
        # As Metaflow: under a foreach that this step does not join.
        self.is_inside_foreach = any(
            p in graph and graph[p].type == "split-foreach"
            and graph[p].matching_join != node.name for p in node.split_parents)

    def __repr__(self) -> str:
        return f"<DAGNode {self.name} ({self.type}) -> {', '.join(self.out_funcs) or '-'}>"


class DAGGraph:
    """The flow's graph, as Metaflow's `metaflow.graph.FlowGraph` names its fields."""

    def __init__(self, graph: FlowGraph, flow_cls=None):
        self.name, self.doc = graph.name, graph.doc
        self.start_step, self.end_step = graph.start_step, graph.end_step
        self.nodes = {n.name: DAGNode(n, graph, _decorators(flow_cls, n.name)) for n in graph}
        self.sorted_nodes = list(self.nodes)

    def __getitem__(self, name: str) -> DAGNode:
        return self.nodes[name]

    def __contains__(self, name) -> bool:
        return name in self.nodes

    def __iter__(self):
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)


def _decorators(flow_cls, step: str) -> list:
    func = getattr(flow_cls, step, None) if flow_cls is not None else None
    return list(getattr(func, "decorators", ()) or ())


_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def flow_dag(flow_cls) -> DAGGraph:
    """`flow_cls`'s graph as Metaflow's: inside a task of that flow the run's graph (a
    mutated flow's), elsewhere the class's."""
    from rayflow.current import current

    ctx = current._ctx if current.is_running_flow else None
    graph = getattr(ctx, "graph", None) if ctx is not None and \
        getattr(ctx, "flow_cls", None) is flow_cls else None
    if graph is None:
        from rayflow.runtime.flowfile import graph_of

        graph = graph_of(flow_cls)
    view = _VIEWS.get(graph)
    if view is None:
        view = _VIEWS[graph] = DAGGraph(graph, flow_cls)
    return view
