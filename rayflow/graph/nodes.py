"""The immutable flow graph: `StepNode` for each step, `FlowGraph` for the whole flow.

This module owns how steps connect: the order the graph is walked in, which steps lead into each
step, and the split/join structure (which splits enclose a step, which join closes a split). It
builds all of that from the facts `parse.py` read from the source, then freezes it.

It never raises for a broken flow: a cycle, an unknown target or an unbalanced split still gives
a graph, so that `lint` can name the step and the line. It never imports ray.

How splits and joins are matched (the same rule Metaflow's runtime relies on): walk the steps in
graph order carrying a stack of open splits. A split step (several targets, or `foreach=`) pushes
itself for its targets. A join step (a step that takes `inputs`) closes the innermost open split
it arrives with. A step's `split_parents` is the stack it arrives with, outermost first; for a
join this still includes the split it closes, exactly as for the steps that lead into it.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from rayflow.graph.parse import ClassSource, ParseIssue, StepSource, read_class

STEP_TYPES = ("start", "linear", "split-static", "split-foreach", "split-switch", "join", "end")


@dataclass(frozen=True)
class StepNode:
    """One step of a flow. Frozen: the graph is built once and shared read-only."""

    name: str
    type: str
    out_funcs: tuple[str, ...]
    in_funcs: tuple[str, ...]
    foreach_param: str | None
    has_inputs: bool
    num_args: int
    func_lineno: int
    next_lineno: int | None
    source_file: str
    split_parents: tuple[str, ...] = ()
    matching_join: str | None = None
    join_of: str | None = None
    is_foreach_join: bool = False
    decorators: tuple[str, ...] = ()
    doc: str = ""
    # Problems found while reading the source; the lint turns them into messages.
    parse_issues: tuple[ParseIssue, ...] = ()
    # A switch (`self.next({...}, condition="var")`) takes one of its cases at run time.
    switch_cases: tuple[tuple[object, str], ...] = ()
    condition: str | None = None
    # For each enclosing split (as split_parents), the target of it this step is under:
    # which branch of a static split a join's input comes from.
    split_branches: tuple[str, ...] = ()
    # The switch cases on the way to this step: (switch, case target) pairs, those that all
    # paths into it share. Two steps on different cases of one switch never both run.
    switch_path: tuple[tuple[str, str], ...] = ()
    # The flow's start (entry) and end (terminal) step: named `start` / `end`, marked with
    # @step(start=True) / @step(end=True), or the one step of a single-step flow (both).
    is_start: bool = False
    is_end: bool = False
    # Whether @step(start=True) / @step(end=True) marked it (the lint names them).
    start_mark: bool = False
    end_mark: bool = False
    # `self.next(self.x, num_parallel=N)`: a foreach over the gang's members (foreach_param is
    # rayflow.parallel.PARALLEL_VAR); num_parallel is N when a literal in the source, else 0.
    parallel_foreach: bool = False
    num_parallel: int = 0
    # The step has @parallel (or @pytorch_parallel): it runs as a gang.
    parallel_step: bool = False

    @property
    def is_switch(self) -> bool:
        return self.type == "split-switch"

    @property
    def is_recursive(self) -> bool:
        """A switch one of whose cases runs the same step again (Metaflow's recursion)."""
        return self.is_switch and self.name in self.out_funcs

    @property
    def is_split(self) -> bool:
        """True when the step fans out: several targets that all run, or a foreach. A switch
        runs one of its targets: it does not split."""
        if self.is_switch:
            return False
        return self.foreach_param is not None or len(self.out_funcs) > 1

    @property
    def is_join(self) -> bool:
        # Metaflow decides "join" by the `inputs` argument alone, so rayflow does too.
        return self.has_inputs

    @property
    def where(self) -> str:
        """`file:line` of the step's `def`."""
        return f"{self.source_file}:{self.func_lineno}"


@dataclass(frozen=True, eq=False)
class FlowGraph:
    """The steps of a flow class, connected. Build it with `FlowGraph.from_class(cls)`.

    Iterating gives the nodes in graph order: a topological order starting at the start step,
    with any step not reachable from it last, in source order. `start_step` and `end_step` name
    the flow's start and end steps (None when the flow has none, or marks several: the lint
    says which).
    """

    name: str
    file: str
    lineno: int
    doc: str
    nodes: Mapping[str, StepNode]
    # Callables on the class that are not steps: "add @step" beats "unknown step" as advice.
    non_step_methods: frozenset[str] = frozenset()
    # Attributes of base classes (FlowSpec.next, ...) that a step of that name would shadow.
    inherited_names: frozenset[str] = frozenset()
    start_step: str | None = None
    end_step: str | None = None

    @classmethod
    def from_class(cls, flow_cls: type) -> FlowGraph:
        return build_graph(read_class(flow_cls))

    def __getitem__(self, name: str) -> StepNode:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(self._unknown_step_message(name)) from None

    def _unknown_step_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.nodes), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"Flow {self.name} has no step {name!r}.{hint}"

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def steps(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    def where(self) -> str:
        """`file:line` of the class statement."""
        return f"{self.file}:{self.lineno}"

    def to_dict(self) -> dict:
        from rayflow.graph.show import graph_to_dict
        return graph_to_dict(self)

    def describe(self) -> str:
        from rayflow.graph.show import describe_graph
        return describe_graph(self)


def stack_leaving(node: StepNode) -> tuple[str, ...]:
    """The open splits a step hands to its targets: a join pops its split, a split pushes."""
    stack = node.split_parents[:-1] if node.join_of else node.split_parents
    return stack + (node.name,) if node.is_split else stack


def _branches_leaving(node: StepNode, target: str) -> tuple[str, ...]:
    branches = node.split_branches[:-1] if node.join_of else node.split_branches
    return branches + (target,) if node.is_split else branches


def _switch_path_leaving(node: StepNode, target: str) -> tuple[tuple[str, str], ...]:
    path = node.switch_path
    return path + ((node.name, target),) if node.is_switch else path


def exclusive(a: StepNode, b: StepNode) -> bool:
    """True when `a` and `b` are on different cases of one switch, so never both run."""
    cases_a = dict(a.switch_path)
    return any(cases_a.get(switch, target) != target for switch, target in b.switch_path)


def _edges(s: StepSource) -> list[str]:
    """The steps a step leads to, less a switch's case that runs the step itself again."""
    return [t for t in s.out_funcs if not (s.condition is not None and t == s.name)]


# ---- building -------------------------------------------------------------------------------

def find_endpoints(steps: Iterable[StepSource]) -> tuple[str | None, str | None]:
    """The flow's (start, end) steps, as Metaflow 2.19 infers them: the one step marked
    @step(start=True) (@step(end=True)), else the step named `start` (`end`); a flow of one
    step has it as both. None where there is none, or several are marked."""
    steps = list(steps)
    if len(steps) == 1:
        return steps[0].name, steps[0].name

    def resolve(marked: Callable[[StepSource], bool], fallback: str) -> str | None:
        chosen = [s.name for s in steps if marked(s)]
        if not chosen:
            return fallback if any(s.name == fallback for s in steps) else None
        return chosen[0] if len(chosen) == 1 else None

    return resolve(lambda s: s.start_mark, "start"), resolve(lambda s: s.end_mark, "end")


def build_graph(source: ClassSource) -> FlowGraph:
    by_name = {s.name: s for s in source.steps}
    start, end = find_endpoints(source.steps)
    order = graph_order(by_name, start)
    nodes = {name: _initial_node(by_name[name], _in_funcs(name, by_name, order), start, end)
             for name in order}
    nodes = _with_split_structure(nodes, order, start)
    return FlowGraph(
        name=source.name,
        file=source.file,
        lineno=source.lineno,
        doc=source.doc,
        nodes=MappingProxyType(nodes),
        non_step_methods=source.non_step_methods,
        inherited_names=source.inherited_names,
        start_step=start,
        end_step=end,
    )


def _step_type(s: StepSource, start: str | None, end: str | None) -> str:
    # `inputs` wins over fan-out, as in Metaflow; a join that also splits is a lint error. The
    # one step of a single-step flow is its end.
    if s.name == end:
        return "end"
    if s.num_args > 1:
        return "join"
    if s.condition is not None or s.switch_cases:
        return "split-switch"
    if s.foreach_param is not None:
        return "split-foreach"
    if len(s.out_funcs) > 1:
        return "split-static"
    return "start" if s.name == start else "linear"


def _initial_node(s: StepSource, in_funcs: tuple[str, ...], start: str | None,
                  end: str | None) -> StepNode:
    return StepNode(
        name=s.name,
        type=_step_type(s, start, end),
        out_funcs=s.out_funcs,
        in_funcs=in_funcs,
        foreach_param=s.foreach_param,
        has_inputs=s.num_args > 1,
        num_args=s.num_args,
        func_lineno=s.func_lineno,
        next_lineno=s.next_lineno,
        source_file=s.source_file,
        decorators=s.decorators,
        doc=s.doc,
        parse_issues=s.issues,
        switch_cases=s.switch_cases,
        condition=s.condition,
        parallel_foreach=s.parallel_foreach,
        num_parallel=s.num_parallel,
        parallel_step=any(d in ("parallel", "pytorch_parallel") for d in s.decorators),
        is_start=s.name == start,
        is_end=s.name == end,
        start_mark=s.start_mark,
        end_mark=s.end_mark,
    )


def _known_targets(s: StepSource, by_name: Mapping[str, StepSource]) -> list[str]:
    # Unknown targets are the lint's business; deduplicated so `self.next(self.a, self.a)`
    # does not count as two edges. A switch's case back to itself is no edge of the order.
    return list(dict.fromkeys(t for t in _edges(s) if t in by_name))


def reachable(names: Iterable[str], targets_of: Callable[[str], Iterable[str]],
              start: str | None = "start") -> list[str]:
    """Steps reachable from `start`, breadth first, following self.next argument order."""
    if start is None or start not in names:
        return []
    seen, queue = [start], deque([start])
    while queue:
        for target in targets_of(queue.popleft()):
            if target in names and target not in seen:
                seen.append(target)
                queue.append(target)
    return seen


def reachable_steps(graph: FlowGraph) -> list[str]:
    return reachable(graph.nodes, lambda name: graph.nodes[name].out_funcs, graph.start_step)


def graph_order(by_name: Mapping[str, StepSource], start: str | None) -> tuple[str, ...]:
    """Topological order from the start step (Kahn's algorithm, first come first served, so
    sibling branches appear side by side, breadth first). Steps caught in a cycle follow in
    discovery order, then steps not reachable from start in source order."""
    found = reachable(by_name, lambda name: by_name[name].out_funcs, start)
    remaining = {name: 0 for name in found}
    for name in found:
        for target in _known_targets(by_name[name], by_name):
            # An edge into start is an error the lint reports; ignoring it here lets the walk
            # still begin at start.
            if target != start:
                remaining[target] += 1
    order, ready = [], deque(found[:1])
    while ready:
        name = ready.popleft()
        order.append(name)
        for target in _known_targets(by_name[name], by_name):
            if target == start:
                continue
            remaining[target] -= 1
            if remaining[target] == 0:
                ready.append(target)
    order += [n for n in found if n not in order]
    order += [n for n in by_name if n not in order]  # by_name is in source order
    return tuple(order)


def _in_funcs(name: str, by_name: Mapping[str, StepSource], order: tuple[str, ...]):
    return tuple(p for p in order if name in _edges(by_name[p]))


def _with_split_structure(nodes: dict[str, StepNode], order: tuple[str, ...],
                          start: str | None):
    """Walk in graph order and fill split_parents, split_branches, switch_path, join_of,
    matching_join, is_foreach_join."""
    leaving: dict[str, tuple[str, ...]] = {}  # walked step -> stack it hands to its targets
    for name in order:
        node = nodes[name]
        walked = [p for p in node.in_funcs if p in leaving]
        if name != start and not walked:
            continue  # not reachable from start: it has no enclosing splits to speak of
        # The first walked predecessor decides. Predecessors that disagree make a join of
        # unrelated branches, which the lint reports.
        arriving = leaving[walked[0]] if walked else ()
        branches = _branches_leaving(nodes[walked[0]], name) if walked else ()
        join_of = arriving[-1] if node.is_join and arriving else None
        # After steps on different cases of a switch meet, the step is no longer conditional
        # on that switch: keep what all the paths into it share.
        paths = [_switch_path_leaving(nodes[p], name) for p in walked]
        switch_path = tuple(paths[0]) if paths else ()
        for other in paths[1:]:
            common = 0
            while common < min(len(switch_path), len(other)) and \
                    switch_path[common] == other[common]:
                common += 1
            switch_path = switch_path[:common]
        nodes[name] = replace(
            node,
            split_parents=arriving,
            split_branches=branches,
            switch_path=switch_path,
            join_of=join_of,
            is_foreach_join=join_of is not None and nodes[join_of].foreach_param is not None,
        )
        leaving[name] = stack_leaving(nodes[name])
        if join_of is not None and nodes[join_of].matching_join is None:
            nodes[join_of] = replace(nodes[join_of], matching_join=name)
    return nodes
