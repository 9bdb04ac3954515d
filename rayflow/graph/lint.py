"""Check a FlowGraph before anything runs, and explain what is wrong in the user's terms.

One small function per rule. Each raises `LintError` naming the step, `file:line`, and the fix.
`lint` runs them in a fixed order, from the most basic to the most structural, so that a later
rule may assume what an earlier one checked (the split/join rules assume an acyclic graph in
which every transition names a real step). The first broken rule wins: one clear message beats
a page of consequences of the same mistake.

This module only reads the graph; it never imports ray and never runs user code.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import NoReturn

from rayflow.exceptions import LintError
from rayflow.flowspec import RESERVED_NAMES
from rayflow.graph.nodes import (
    FlowGraph,
    StepNode,
    exclusive,
    reachable_steps,
    stack_leaving,
)
from rayflow.graph.parse import UNSUPPORTED_NEXT_KEYWORDS, IssueKind

# FlowSpec's API and Metaflow's reserved words: a step of such a name would shadow them. The
# one list is FlowSpec's own (artifacts may not take these names either).
RESERVED_STEP_NAMES = RESERVED_NAMES


def _fail(node: StepNode | None, line: int | None, msg: str, *, graph: FlowGraph,
          step: str | None = None) -> NoReturn:
    """Raise a LintError that starts with `file:line` so editors and terminals can jump to it."""
    file = node.source_file if node else graph.file
    line = line if line is not None else (node.func_lineno if node else graph.lineno)
    step = step or (node.name if node else None)
    raise LintError(f"{file}:{line}: {msg}", step=step, line=line, file=file)


def _names(steps) -> str:
    return ", ".join(f"*{s}*" for s in steps)


# ---- the flow has the steps it needs, with usable names and signatures ----------------------

def _marked_twice(graph: FlowGraph, which: str) -> None:
    marked = [n for n in graph if getattr(n, f"{which}_mark")]
    if len(marked) > 1:
        _fail(marked[1], None, f"Flow *{graph.name}* marks {_names(n.name for n in marked)} "
              f"with @step({which}=True), but a flow has exactly one {which} step. Keep the "
              "mark on one of them.", graph=graph)


def check_start_exists(graph: FlowGraph) -> None:
    if graph.start_step is None:
        _marked_twice(graph, "start")
        _fail(None, None, f"Flow *{graph.name}* has no start step: no step is named *start* "
              "or marked @step(start=True). Every flow begins with one: name a step start "
              "(`@step def start(self): ...`) or mark it with @step(start=True).",
              graph=graph, step="start")


def check_end_exists(graph: FlowGraph) -> None:
    if graph.end_step is None:
        _marked_twice(graph, "end")
        _fail(None, None, f"Flow *{graph.name}* has no end step: no step is named *end* or "
              "marked @step(end=True). Every flow finishes with one: name a step end "
              "(`@step def end(self): pass`) or mark it with @step(end=True).",
              graph=graph, step="end")


def check_marks_agree_with_names(graph: FlowGraph) -> None:
    """A step marked @step(start=True) beside another named start is ambiguous (end too)."""
    for which, chosen in (("start", graph.start_step), ("end", graph.end_step)):
        if chosen != which and which in graph and len(graph) > 1:
            _fail(graph[which], None, f"Flow *{graph.name}* has two {which} steps: *{chosen}* "
                  f"is marked with @step({which}=True), and a step is named *{which}*. Rename "
                  f"*{which}*, or remove the mark from *{chosen}*.", graph=graph)


def check_step_names(graph: FlowGraph) -> None:
    for node in graph:
        if node.name.startswith("_"):
            _fail(node, None, f"Step *{node.name}* has a name starting with an underscore, "
                  "which rayflow keeps for itself. Rename the step.", graph=graph)
        if node.name in RESERVED_STEP_NAMES or node.name in graph.inherited_names:
            _fail(node, None, f"Step *{node.name}* has a reserved name: it would hide the "
                  f"flow's own `self.{node.name}`. Rename the step.", graph=graph)


def check_step_arguments(graph: FlowGraph) -> None:
    for node in graph:
        terminal = node.is_start or node.is_end
        if node.num_args == 0:
            _fail(node, None, f"Step *{node.name}* takes no `self` argument. Write it as "
                  f"`def {node.name}(self):`.", graph=graph)
        if node.num_args > 2 or (terminal and node.num_args > 1):
            shape = "(self)" if terminal else "(self) or, for a join, (self, inputs)"
            _fail(node, None, f"Step *{node.name}* takes {node.num_args} arguments. A step "
                  f"takes {shape}: remove the extra arguments and pass values through "
                  "artifacts (self.x = ...) or Parameters instead.", graph=graph)


# ---- each step's self.next() is well formed -------------------------------------------------

def check_end_has_no_next(graph: FlowGraph) -> None:
    end = graph[graph.end_step]
    if end.next_lineno is not None:
        why = " (a flow of one step has it as both its start and its end)" \
            if len(graph) == 1 else ""
        _fail(end, end.next_lineno, f"Step *{end.name}* calls self.next(), but it is the end "
              f"step of the flow{why} and transitions nowhere. Remove the self.next() call"
              f"{', or add the steps it names' if why else ''}.", graph=graph)


def check_next_is_last(graph: FlowGraph) -> None:
    for node in graph:
        for issue in node.parse_issues:
            if issue.kind is IssueKind.NEXT_NOT_LAST and not node.is_end:
                _fail(node, issue.line, f"Step *{node.name}* calls `{issue.detail}` somewhere "
                      "other than as the last statement of the function (inside an if or a "
                      "loop, followed by more code, or more than once). A step has exactly one "
                      "transition: make a single self.next() the last line of the function; "
                      "choose values, not steps, in the code above it.", graph=graph)


def check_next_exists(graph: FlowGraph) -> None:
    for node in graph:
        if not node.is_end and node.next_lineno is None:
            _fail(node, None, f"Step *{node.name}* is missing a self.next() transition to the "
                  "next step. Add a self.next() as the last line in the function.", graph=graph)


def check_next_arguments(graph: FlowGraph) -> None:
    for node in graph:
        for issue in node.parse_issues:
            if issue.kind is IssueKind.NEXT_BAD_ARGUMENT:
                _fail(node, issue.line, f"Step *{node.name}* passes `{issue.detail}` to "
                      "self.next(). Name each next step as an attribute of self, for example "
                      "self.next(self.train), not a string or a variable.", graph=graph)
        if node.next_lineno is not None and not node.out_funcs and not node.is_end:
            _fail(node, node.next_lineno, f"Step *{node.name}* calls self.next() without a "
                  "step. Pass the next step, for example self.next(self.end).", graph=graph)


def check_next_keywords(graph: FlowGraph) -> None:
    for node in graph:
        for issue in node.parse_issues:
            if issue.kind is not IssueKind.NEXT_UNSUPPORTED_KEYWORD:
                continue
            if issue.detail == "num_parallel with foreach":
                _fail(node, issue.line, f"Step *{node.name}* passes both foreach= and "
                      "num_parallel= to self.next(). Use one: foreach= runs a task per item, "
                      "num_parallel=N a gang of N tasks of a @parallel step.", graph=graph)
            if issue.detail in UNSUPPORTED_NEXT_KEYWORDS:
                why = f"`{issue.detail}=` is a Metaflow feature rayflow does not support yet"
            else:
                why = (f"`{issue.detail}` is not a keyword of self.next() (only foreach= and "
                       "num_parallel= are)")
            _fail(node, issue.line, f"Step *{node.name}*: {why}. Remove it; to choose a path "
                  "at run time, use a switch: self.next({\"a\": self.a, \"b\": self.b}, "
                  "condition=\"choice\").", graph=graph)


def check_parallel_steps(graph: FlowGraph) -> None:
    """As Metaflow's lint: num_parallel= leads to a @parallel step, a @parallel step is reached
    only through num_parallel= and leads to a join, and is no switch."""
    for node in graph:
        if node.parallel_foreach:
            for target in node.out_funcs:
                if target in graph and not graph[target].parallel_step:
                    _fail(node, node.next_lineno, f"Step *{target}* is called as a parallel "
                          f"step with self.next(num_parallel=..) from *{node.name}* but does "
                          f"not have a @parallel decorator. Put @parallel above its @step.",
                          graph=graph)
        if not node.parallel_step:
            continue
        for parent in node.in_funcs:
            if parent in graph and not graph[parent].parallel_foreach:
                _fail(node, None, f"Step *{node.name}* has a @parallel decorator, but is not "
                      f"called with self.next(num_parallel=...) from step *{parent}*. Call "
                      f"it as self.next(self.{node.name}, num_parallel=N).", graph=graph)
        if "actor_pool" in node.decorators:
            _fail(node, None, f"Step *{node.name}* has both @parallel and @actor_pool: a gang's "
                  "members run as tasks of their own placement group, not on a pool. Remove "
                  "one of them.", graph=graph)
        if node.is_switch:
            _fail(node, node.next_lineno, f"A @parallel step can not be a conditional switch "
                  f"step. Please add a join step after *{node.name}*.", graph=graph)
        nxt = node.out_funcs[0] if node.out_funcs else None
        if nxt is not None and nxt in graph and graph[nxt].type != "join":
            _fail(node, node.next_lineno, f"An @parallel step should be followed by a join "
                  f"step. Step *{nxt}* is called after the @parallel step *{node.name}* but is "
                  f"not a join step. Please add an extra `inputs` argument to the step.",
                  graph=graph)


def check_switch_is_well_formed(graph: FlowGraph) -> None:
    for node in graph:
        for issue in node.parse_issues:
            if issue.kind is IssueKind.SWITCH_MALFORMED:
                _fail(node, issue.line, f"Step *{node.name}* has a switch that rayflow cannot "
                      f"read ({issue.detail}). Write it as self.next({{\"a\": self.step_a, "
                      "\"b\": self.step_b}, condition=\"choice\"): each key a literal value "
                      "of self.choice, each value a step of this flow, and condition= the "
                      "artifact's name as a string.", graph=graph)
        if node.is_switch and len(node.out_funcs) < 2:
            _fail(node, node.next_lineno, f"Step *{node.name}* is a switch with "
                  f"{len(node.out_funcs)} distinct next step(s). A switch needs at least two: "
                  "with only one, write self.next(self.step).", graph=graph)


def check_switch_does_not_lead_to_a_join(graph: FlowGraph) -> None:
    for node in graph:
        if not node.is_join:
            continue
        switches = [p for p in node.in_funcs if graph[p].is_switch]
        if switches:
            _fail(node, None, f"Step *{node.name}* is a join reached straight from the switch "
                  f"{_names(switches)}: a case that goes straight to a join leaves the join "
                  "unsure of what it waits for. Put an ordinary step on that case between the "
                  "switch and the join.", graph=graph)


def check_foreach_is_literal(graph: FlowGraph) -> None:
    for node in graph:
        for issue in node.parse_issues:
            if issue.kind is IssueKind.FOREACH_NOT_LITERAL:
                _fail(node, issue.line, f"Step *{node.name}* has foreach={issue.detail}. "
                      "foreach takes the name of an artifact as a string literal: set "
                      "self.items = [...] and write self.next(self.step, foreach=\"items\").",
                      graph=graph)


# ---- every transition goes to a real step, in an allowed direction --------------------------

def check_targets_exist(graph: FlowGraph) -> None:
    for node in graph:
        for target in node.out_funcs:
            if target in graph:
                continue
            if target in graph.non_step_methods:
                _fail(node, node.next_lineno, f"Step *{node.name}* transitions to "
                      f"*{target}*, which is a method but not a step. Add @step above "
                      f"`def {target}`.", graph=graph)
            close = difflib.get_close_matches(target, graph.steps, n=3)
            hint = f" Did you mean {_names(close)}?" if close else ""
            _fail(node, node.next_lineno, f"Step *{node.name}* transitions to an unknown "
                  f"step *{target}*.{hint} Steps are the methods decorated with @step.",
                  graph=graph)


def check_no_duplicate_targets(graph: FlowGraph) -> None:
    for node in graph:
        if node.is_switch:
            continue  # several cases may choose the same step
        twice = sorted({t for t in node.out_funcs if node.out_funcs.count(t) > 1})
        if twice:
            _fail(node, node.next_lineno, f"Step *{node.name}* names {_names(twice)} more "
                  "than once in self.next(). Name each next step once; to run a step many "
                  "times in parallel, use foreach=.", graph=graph)


def check_no_edge_into_start(graph: FlowGraph) -> None:
    start = graph.start_step
    for node in graph:
        if start in node.out_funcs:
            _fail(node, node.next_lineno, f"Step *{node.name}* transitions to *{start}*, the "
                  "start step. The start step is where the flow begins and no step may lead "
                  "back to it; transition to another step.", graph=graph)


def check_foreach_has_one_target(graph: FlowGraph) -> None:
    for node in graph:
        if node.foreach_param is not None and len(node.out_funcs) != 1:
            _fail(node, node.next_lineno, f"Step *{node.name}* is a foreach with "
                  f"{len(node.out_funcs)} next steps ({_names(node.out_funcs)}). A foreach "
                  "runs exactly one step per item: write self.next(self.one_step, "
                  f"foreach=\"{node.foreach_param}\").", graph=graph)


def _find_cycle(graph: FlowGraph) -> list[str] | None:
    """A path a -> ... -> a, or None. Depth first, in graph order, so the result is stable."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> list[str] | None:  # path ends with name
        state[name] = "open"
        for target in graph[name].out_funcs:
            if target not in graph or (target == name and graph[name].is_switch):
                continue  # a switch's case that runs its own step again is allowed
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[name] = "done"
        return None

    for name in graph.steps:
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def check_acyclic(graph: FlowGraph) -> None:
    cycle = _find_cycle(graph)
    if cycle:
        closer = graph[cycle[-2]]
        _fail(closer, closer.next_lineno, f"Step *{closer.name}* loops back to "
              f"*{cycle[-1]}*: {' -> '.join(cycle)}. A flow cannot contain loops; to repeat "
              "a step, let a switch choose the step itself (self.next({\"again\": "
              f"self.{closer.name}, \"done\": self.next_step}}, condition=...)), or use "
              "foreach= or a loop inside one step.", graph=graph)


def check_all_reachable(graph: FlowGraph) -> None:
    found = set(reachable_steps(graph))
    for node in graph:
        if node.name not in found:
            _fail(node, None, f"Step *{node.name}* cannot be reached from the start step "
                  f"*{graph.start_step}*: no chain of "
                  "self.next() calls leads to it. Transition to it from another step, or "
                  "remove @step.", graph=graph)


# ---- splits and joins balance ---------------------------------------------------------------

def _merges_switch_cases(graph: FlowGraph, node: StepNode) -> bool:
    """True when every two steps leading to `node` are on different cases of a switch, so
    exactly one of them runs: the step is where the cases meet again, not a join."""
    ins = [graph[p] for p in node.in_funcs]
    return all(exclusive(a, b) for i, a in enumerate(ins) for b in ins[i + 1:])


def check_joins_take_inputs(graph: FlowGraph) -> None:
    for node in graph:
        if len(node.in_funcs) < 2 or node.has_inputs or _merges_switch_cases(graph, node):
            continue
        if node.is_end:
            _fail(node, None, f"Step *{node.name}* (the end step) is reached from several "
                  f"steps ({_names(node.in_funcs)}), so their branches are never joined. Add a "
                  "join step `def join(self, inputs)` that they all transition to, and have it "
                  f"transition to {node.name}.", graph=graph)
        _fail(node, None, f"Step *{node.name}* is reached from several steps "
              f"({_names(node.in_funcs)}), so it is a join, but it takes no `inputs` argument. "
              f"Write it as `def {node.name}(self, inputs):`.", graph=graph)


def check_join_does_not_split(graph: FlowGraph) -> None:
    for node in graph:
        if node.is_join and node.is_split:
            _fail(node, node.next_lineno, f"Step *{node.name}* is a join (it takes `inputs`) "
                  "and also splits. Let the join transition to one new step, and split from "
                  "that step.", graph=graph)


def check_split_has_one_join(graph: FlowGraph) -> None:
    for split in graph:
        joins = [n.name for n in graph if n.join_of == split.name]
        if len(joins) > 1:
            _fail(split, split.next_lineno, f"Step *{split.name}* splits, but its branches "
                  f"end in different joins ({_names(joins)}). All branches of a split must "
                  "meet in one join step: transition each branch to the same join.",
                  graph=graph)


def check_join_of_related_branches(graph: FlowGraph) -> None:
    for node in graph:
        stacks = {p: stack_leaving(graph[p]) for p in node.in_funcs}
        if len(set(stacks.values())) > 1:
            detail = "; ".join(f"*{p}* is inside {_names(s) or 'no split'}"
                               for p, s in stacks.items())
            _fail(node, None, f"Step *{node.name}* joins unrelated branches: {detail}. A join "
                  "must close the branches of one split: join the inner split first, then "
                  "join its result with the other branches.", graph=graph)


def check_inputs_only_on_joins(graph: FlowGraph) -> None:
    for node in graph:
        if not node.is_join or node.is_end or node.is_start:
            continue
        closes_static = node.join_of and graph[node.join_of].foreach_param is None
        if node.join_of is None or (closes_static and len(node.in_funcs) < 2):
            _fail(node, None, f"Step *{node.name}* takes an `inputs` argument, but it does not "
                  "join anything: only one step leads to it and it does not close a foreach "
                  "or a split. Remove the argument: `def "
                  f"{node.name}(self):`.", graph=graph)


def check_end_outside_splits(graph: FlowGraph) -> None:
    end = graph[graph.end_step]
    if end.split_parents:
        open_split = graph[end.split_parents[-1]]
        last = end.in_funcs[0] if end.in_funcs else None
        # Suggest making the last step the join only when it is not the split's own target:
        # a foreach body that goes straight to end needs a new step, not an `inputs` argument.
        is_candidate = last and last not in (open_split.name, *open_split.out_funcs)
        hint = (f" If *{last}* is meant to be that join, give it the argument: "
                f"`def {last}(self, inputs):`.") if is_candidate else ""
        _fail(end, None, f"Step *{end.name}* (the end step) is reached before the split at step "
              f"*{open_split.name}* ({open_split.source_file}:{open_split.next_lineno}) is "
              f"joined. Add a join step `def join(self, inputs)` before {end.name}.{hint}",
              graph=graph)


# The order matters: see the module docstring.
RULES: tuple[Callable[[FlowGraph], None], ...] = (
    check_start_exists,
    check_end_exists,
    check_marks_agree_with_names,
    check_step_names,
    check_step_arguments,
    check_end_has_no_next,
    check_next_is_last,
    check_next_exists,
    check_switch_is_well_formed,
    check_next_arguments,
    check_next_keywords,
    check_parallel_steps,
    check_foreach_is_literal,
    check_targets_exist,
    check_no_duplicate_targets,
    check_no_edge_into_start,
    check_foreach_has_one_target,
    check_acyclic,
    check_all_reachable,
    check_joins_take_inputs,
    check_switch_does_not_lead_to_a_join,
    check_join_does_not_split,
    check_split_has_one_join,
    check_join_of_related_branches,
    check_inputs_only_on_joins,
    check_end_outside_splits,
)


def lint(graph: FlowGraph) -> None:
    """Raise LintError for the first broken rule; return None when the flow is sound."""
    for rule in RULES:
        rule(graph)
