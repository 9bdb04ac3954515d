"""The scheduler as a pure state machine: every graph shape, tasks finishing in any order."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _graph_helpers import load_module  # noqa: E402

from rayflow.exceptions import InvalidNextError  # noqa: E402
from rayflow.graph import FlowGraph  # noqa: E402
from rayflow.runtime.scheduler import Fanout, Scheduler, TaskDone, structural_key  # noqa: E402

SHAPES = load_module(HERE / "flows_bad" / "good_shapes.py")
STACKS: dict = {}  # task key -> its foreach stack, for the tests that check join order
LOOPS = 3


def simulate(graph, width: int = 3, seed: int = 0, empty: set[str] = frozenset()):
    """Run the graph with fake tasks, finishing ready tasks in a random order."""
    rng = random.Random(seed)
    sched = Scheduler(graph)
    ready = list(sched.start())
    counts: Counter = Counter()
    joins: list = []
    seen = set()
    ids: list = []
    while ready:
        task = ready.pop(rng.randrange(len(ready)))
        if isinstance(task, Fanout):
            ready.extend(task.take(task.num_splits))
            continue
        assert task.key not in seen, f"{task.key} ran twice"
        seen.add(task.key)
        ids.append(task.task_id)
        STACKS[str(task.key)] = task.stack
        counts[task.step] += 1
        node = graph[task.step]
        if task.is_join:
            joins.append((task.step, [str(p.key) for p in task.parents]))
        num = (0 if task.step in empty else width) if node.foreach_param else None
        next_steps = tuple(node.out_funcs)
        if node.is_switch:  # a recursive switch loops LOOPS times, then takes another case
            others = [s for s in node.out_funcs if s != node.name]
            again = node.is_recursive and task.iteration < LOOPS
            next_steps = (node.name,) if again else (others[rng.randrange(len(others))],)
        done = TaskDone(task.step, task.stack, next_steps, node.foreach_param, num,
                        scope=task.key, iteration=task.iteration, task_id=task.task_id)
        ready.extend(sched.task_done(done))
    # Task ids are unique in the run, as Metaflow's are, whatever the steps.
    assert len(set(ids)) == len(ids), f"task ids repeat: {sorted(ids, key=int)}"
    return sched, counts, joins


@pytest.mark.parametrize("seed", range(5))
def test_linear_and_branch(seed):
    sched, counts, joins = simulate(FlowGraph.from_class(SHAPES.BranchFlow), seed=seed)
    assert sched.finished and sched.open_joins == 0
    assert counts["end"] == 1 and all(v == 1 for v in counts.values())
    (join_step, parents), = joins
    graph = FlowGraph.from_class(SHAPES.BranchFlow)
    assert [p.split("/")[0] for p in parents] == list(graph[join_step].in_funcs)


@pytest.mark.parametrize("seed", range(5))
def test_nested_foreach_counts_and_join_order(seed):
    graph = FlowGraph.from_class(SHAPES.NestedForeachFlow)
    sched, counts, joins = simulate(graph, width=3, seed=seed)
    assert sched.finished and counts["end"] == 1
    per_depth = {name: 3 ** len([s for s in graph[name].split_parents
                                 if graph[s].type == "split-foreach"])
                 for name in graph.steps}
    for name in graph.steps:
        if graph[name].type == "join":
            continue
        assert counts[name] == per_depth[name], (name, counts)
    for step, parents in joins:
        if not graph[step].is_foreach_join:
            continue
        indices = [STACKS[p][-1][1] for p in parents]
        assert indices == list(range(len(parents)))  # inputs[i] is split i


@pytest.mark.parametrize("shape", ["LinearFlow", "ForeachFlow", "BranchInForeachFlow",
                                   "ForeachInBranchFlow", "JoinThenSplitFlow",
                                   "SplitStraightIntoJoinFlow"])
def test_every_shape_finishes(shape):
    graph = FlowGraph.from_class(getattr(SHAPES, shape))
    for seed in range(3):
        sched, counts, _ = simulate(graph, seed=seed)
        assert sched.finished and counts["end"] == 1 and sched.open_joins == 0


def test_empty_foreach_runs_its_join_with_no_inputs():
    graph = FlowGraph.from_class(SHAPES.ForeachFlow)
    split = next(n for n in graph.steps if graph[n].type == "split-foreach")
    sched, counts, joins = simulate(graph, empty={split})
    assert sched.finished and joins and joins[0][1] == []


def test_task_ids_are_unique_in_the_run_and_resume_matches_by_the_stack():
    graph = FlowGraph.from_class(SHAPES.BranchFlow)
    sched = Scheduler(graph)
    (start,) = sched.start()
    assert start.task_id == "0"
    node = graph["start"]
    branches = list(sched.task_done(TaskDone("start", (), tuple(node.out_funcs), None, None,
                                             task_id="0")))
    assert len(branches) == 2 and len({b.task_id for b in branches}) == 2  # static branches
    assert structural_key(()) == ((), 0)
    assert structural_key((("a", 3, 5), ("b", 12, 20)), 2) == ((3, 12), 2)


def test_a_transition_other_than_the_code_says_is_an_error():
    graph = FlowGraph.from_class(SHAPES.BranchFlow)
    sched = Scheduler(graph)
    (start,) = sched.start()
    wrong = TaskDone("start", (), ("end",), None, None)
    with pytest.raises(InvalidNextError) as info:
        list(sched.task_done(wrong))
    assert "'start'" in str(info.value) and "self.end" in str(info.value)


def test_fanout_is_lazy():
    graph = FlowGraph.from_class(SHAPES.ForeachFlow)
    sched = Scheduler(graph)
    (start,) = sched.start()
    node = graph["start"]
    done = TaskDone("start", (), tuple(node.out_funcs), node.foreach_param, 1_000_000,
                    task_id=start.task_id)
    (fan,) = list(sched.task_done(done))
    assert isinstance(fan, Fanout) and fan.remaining == 1_000_000
    first = fan.take(10)
    # One block of ids for the whole foreach: split i is first + i.
    assert [t.task_id for t in first] == [str(fan.first_id + i) for i in range(10)]
    assert [t.split_index for t in first] == list(range(10))
    assert fan.remaining == 999_990
    assert sched._reserve(1) == fan.first_id + 1_000_000


# ---------------------------------------------------------------------------------- switches
def test_a_switch_runs_exactly_one_case_and_the_cases_meet_again():
    graph = FlowGraph.from_class(SHAPES.SwitchFlow)
    assert graph["start"].type == "split-switch" and not graph["start"].is_split
    assert graph["start"].switch_cases == (("a", "a"), ("b", "b"), ("c", "c"))
    assert graph["end"].in_funcs == ("a", "b", "c") and not graph["end"].is_join
    for seed in range(4):
        sched, counts, joins = simulate(graph, seed=seed)
        assert sched.finished and counts["end"] == 1 and not joins
        assert sum(counts[s] for s in "abc") == 1


def test_a_recursive_switch_runs_its_step_again_with_new_task_ids():
    graph = FlowGraph.from_class(SHAPES.RecursiveSwitchFlow)
    assert graph["loop"].is_recursive and graph["loop"].in_funcs == ("start",)
    sched = Scheduler(graph)
    ready = list(sched.start())
    ids = []
    while ready:
        task = ready.pop()
        node = graph[task.step]
        if task.step == "loop":
            ids.append(task.task_id)
        nxt = tuple(node.out_funcs)
        if node.is_switch:
            nxt = ("loop",) if task.iteration < LOOPS else ("after",)
        ready.extend(sched.task_done(TaskDone(task.step, task.stack, nxt, None, None,
                                              scope=task.key, iteration=task.iteration,
                                              task_id=task.task_id)))
    assert len(ids) == 4 and len(set(ids)) == 4 and sched.finished


def test_a_static_join_waits_for_one_task_per_branch_through_a_switch():
    graph = FlowGraph.from_class(SHAPES.SwitchInBranchFlow)
    assert graph["x"].split_branches == ("a",) and graph["b"].split_branches == ("b",)
    for seed in range(4):
        sched, counts, joins = simulate(graph, seed=seed)
        assert sched.finished and counts["join"] == 1
        (_, parents), = joins
        assert sorted(p.split("/")[0] for p in parents) in (["b", "x"], ["b", "y"])


def test_a_switch_in_a_foreach_joins_every_split():
    graph = FlowGraph.from_class(SHAPES.SwitchInForeachFlow)
    sched, counts, joins = simulate(graph, width=5, seed=1)
    assert sched.finished and counts["odd"] + counts["even"] == 5
    (_, parents), = joins
    assert [STACKS[p][-1][1] for p in parents] == [0, 1, 2, 3, 4]


def test_a_switch_must_take_one_of_its_cases():
    graph = FlowGraph.from_class(SHAPES.SwitchFlow)
    sched = Scheduler(graph)
    (start,) = sched.start()
    with pytest.raises(InvalidNextError, match="is a switch over self.a, self.b, self.c"):
        list(sched.task_done(TaskDone("start", (), ("a", "b"), None, None, scope=None)))
