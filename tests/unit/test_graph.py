"""FlowGraph from flow classes of every shape: types, edges, split structure, order, rendering,
immutability, and the promise that the graph never imports ray."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the flow files import the test `step` from _graph_helpers
    sys.path.insert(0, str(HERE))

from _graph_helpers import load_module, step

from rayflow.exceptions import InvalidFlowError
from rayflow.graph import FlowGraph, StepNode

GOOD_FILE = HERE / "flows_bad" / "good_shapes.py"
good = load_module(GOOD_FILE)
bad = load_module(HERE / "flows_bad" / "bad_flows.py")
REPO = HERE.parent.parent


def line_of(text: str) -> int:
    """The 1-based line of the one line in good_shapes.py that contains `text`."""
    hits = [i + 1 for i, line in enumerate(GOOD_FILE.read_text().splitlines()) if text in line]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def graph_of(flow_cls) -> FlowGraph:
    return FlowGraph.from_class(flow_cls)


def types(graph: FlowGraph) -> dict[str, str]:
    return {node.name: node.type for node in graph}


def parents(graph: FlowGraph) -> dict[str, tuple[str, ...]]:
    return {node.name: node.split_parents for node in graph}


# ---- shapes ---------------------------------------------------------------------------------

def test_linear():
    graph = graph_of(good.LinearFlow)
    assert graph.name == "LinearFlow"
    assert graph.file == str(GOOD_FILE)
    assert graph.steps == ("start", "middle", "end")
    assert types(graph) == {"start": "start", "middle": "linear", "end": "end"}
    assert graph["start"].out_funcs == ("middle",)
    assert graph["middle"].in_funcs == ("start",)
    assert graph["end"].out_funcs == () and graph["end"].next_lineno is None
    assert all(node.split_parents == () for node in graph)
    assert graph["start"].is_start and not graph["middle"].is_start


def test_step_source_facts():
    start = graph_of(good.LinearFlow)["start"]
    # The decorator lines sit above the def; func_lineno is the def line itself.
    lines = GOOD_FILE.read_text().splitlines()
    assert lines[start.func_lineno - 1].strip() == "def start(self):"
    assert start.next_lineno == line_of("self.next(self.middle)")
    assert start.source_file == str(GOOD_FILE)
    assert start.doc == "Begin here."
    # @retry sits above @resources above @step: resources was applied first.
    assert start.decorators == ("resources", "retry")
    assert (start.num_args, start.has_inputs) == (1, False)
    assert graph_of(good.LinearFlow)["end"].doc == "All done."


def test_static_branch_with_several_steps():
    graph = graph_of(good.BranchFlow)
    assert graph.steps == ("start", "a", "b", "a2", "join", "end")
    assert types(graph) == {"start": "split-static", "a": "linear", "b": "linear",
                            "a2": "linear", "join": "join", "end": "end"}
    assert graph["start"].out_funcs == ("a", "b")
    assert graph["start"].is_start
    assert graph["join"].in_funcs == ("b", "a2")  # sorted by graph order
    assert (graph["join"].num_args, graph["join"].has_inputs) == (2, True)
    assert parents(graph) == {"start": (), "a": ("start",), "b": ("start",), "a2": ("start",),
                              "join": ("start",), "end": ()}
    assert graph["start"].matching_join == "join"
    assert graph["join"].join_of == "start"
    assert not graph["join"].is_foreach_join


def test_foreach():
    graph = graph_of(good.ForeachFlow)
    start = graph["start"]
    assert (start.type, start.is_start, start.foreach_param) == ("split-foreach", True, "items")
    lines = GOOD_FILE.read_text().splitlines()
    assert lines[start.next_lineno - 1].strip() == 'self.next(self.body, foreach="items")'
    assert lines[start.next_lineno - 3].strip() == "def start(self):"
    assert parents(graph) == {"start": (), "body": ("start",), "join": ("start",), "end": ()}
    assert start.matching_join == "join"
    assert graph["join"].join_of == "start" and graph["join"].is_foreach_join


def test_nested_foreach():
    graph = graph_of(good.NestedForeachFlow)
    assert types(graph)["outer"] == types(graph)["inner"] == "split-foreach"
    assert parents(graph) == {
        "start": (), "outer": (), "inner": ("outer",), "body": ("outer", "inner"),
        "join_inner": ("outer", "inner"), "join_outer": ("outer",), "end": ()}
    assert graph["inner"].matching_join == "join_inner"
    assert graph["outer"].matching_join == "join_outer"
    assert graph["join_inner"].join_of == "inner" and graph["join_inner"].is_foreach_join
    assert graph["join_outer"].join_of == "outer" and graph["join_outer"].is_foreach_join


def test_static_branch_inside_foreach():
    graph = graph_of(good.BranchInForeachFlow)
    assert types(graph)["fan"] == "split-static"
    assert parents(graph) == {
        "start": (), "fan": ("start",), "p": ("start", "fan"), "q": ("start", "fan"),
        "inner_join": ("start", "fan"), "outer_join": ("start",), "end": ()}
    assert graph["fan"].matching_join == "inner_join"
    assert not graph["inner_join"].is_foreach_join
    assert graph["outer_join"].join_of == "start" and graph["outer_join"].is_foreach_join


def test_foreach_inside_static_branch():
    graph = graph_of(good.ForeachInBranchFlow)
    assert graph.steps == ("start", "a", "b", "body", "foreach_join", "join", "end")
    assert parents(graph)["body"] == ("start", "a")
    assert graph["a"].matching_join == "foreach_join"
    assert graph["foreach_join"].is_foreach_join
    assert graph["join"].in_funcs == ("b", "foreach_join")
    assert graph["join"].join_of == "start" and not graph["join"].is_foreach_join
    assert graph["start"].matching_join == "join"


def test_join_followed_by_split():
    graph = graph_of(good.JoinThenSplitFlow)
    assert graph["join1"].join_of == "start"
    assert graph["fan"].split_parents == ()
    assert graph["fan"].type == "split-foreach"
    assert graph["work"].split_parents == ("fan",)
    assert graph["join2"].join_of == "fan" and graph["join2"].is_foreach_join
    assert graph["start"].matching_join == "join1" and graph["fan"].matching_join == "join2"


def test_split_straight_into_its_join():
    graph = graph_of(good.SplitStraightIntoJoinFlow)
    assert graph["join"].in_funcs == ("start", "a")
    assert graph["join"].join_of == "start"


def test_custom_named_start_and_end():
    graph = graph_of(good.CustomNamedFlow)
    assert (graph.start_step, graph.end_step) == ("begin", "finish")
    assert graph.steps == ("begin", "body", "finish")
    assert types(graph) == {"begin": "start", "body": "linear", "finish": "end"}
    assert graph["begin"].is_start and graph["begin"].start_mark and not graph["begin"].is_end
    assert graph["finish"].is_end and not graph["body"].is_start
    assert graph.to_dict()["start_step"] == "begin" and graph.to_dict()["end_step"] == "finish"


def test_custom_named_split_structure():
    graph = graph_of(good.CustomBranchFlow)
    assert graph.steps[0] == "entry" and graph.steps[-1] == "done"
    assert graph["entry"].type == "split-static" and graph["entry"].matching_join == "merge"
    assert graph["each"].split_parents == ("entry", "b")
    assert graph["inner"].join_of == "b" and graph["inner"].is_foreach_join
    assert graph["merge"].join_of == "entry"


@pytest.mark.parametrize("flow_cls", [good.SingleStepFlow, good.SingleBareStepFlow])
def test_single_step_flow_is_its_own_start_and_end(flow_cls):
    graph = graph_of(flow_cls)
    assert (graph.start_step, graph.end_step) == ("only", "only")
    node = graph["only"]
    assert node.type == "end" and node.is_start and node.is_end
    assert node.in_funcs == () and node.out_funcs == ()


def test_step_named_start_beside_a_marked_end():
    graph = graph_of(good.MarkedEndNamedStartFlow)
    assert (graph.start_step, graph.end_step) == ("start", "finish")
    assert types(graph) == {"start": "start", "finish": "end"}


def test_no_endpoints_when_several_are_marked():
    graph = graph_of(bad.TwoStartMarks)
    assert graph.start_step is None and graph.end_step == "end"


@pytest.mark.parametrize("flow_cls", good.ALL_GOOD, ids=lambda c: c.__name__)
def test_order_is_topological(flow_cls):
    graph = graph_of(flow_cls)
    position = {name: i for i, name in enumerate(graph.steps)}
    assert graph.steps[0] == graph.start_step and graph.steps[-1] == graph.end_step
    for node in graph:
        assert all(position[p] < position[node.name] for p in node.in_funcs)
        assert list(node.in_funcs) == sorted(node.in_funcs, key=position.get)
    assert [node.name for node in graph] == list(graph.steps)  # iterating yields StepNodes


# ---- order of unreachable steps, broken flows still build -----------------------------------

class OrphansFlow:
    @step
    def start(self):
        self.next(self.end)

    @step
    def zeta(self):
        self.next(self.end)

    @step
    def alpha(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_unreachable_steps_come_last_in_source_order():
    assert graph_of(OrphansFlow).steps == ("start", "end", "zeta", "alpha")
    assert graph_of(OrphansFlow)["end"].in_funcs == ("start", "zeta", "alpha")


def test_broken_flows_still_build():
    cycle = graph_of(bad.Cycle)
    assert cycle.steps == ("start", "a", "b", "end")
    assert cycle["a"].in_funcs == ("start", "b")
    stray = graph_of(bad.NextInsideIf)["start"]
    assert stray.out_funcs == ("a",) and stray.parse_issues
    assert graph_of(bad.NoStart).steps == ("begin", "end")
    assert graph_of(bad.UnknownTarget)["start"].out_funcs == ("trian",)


class BaseWithStart:
    @step
    def start(self):
        self.next(self.end)


class InheritsStart(BaseWithStart):
    @step
    def end(self):
        pass


def test_inherited_steps_are_steps():
    graph = graph_of(InheritsStart)
    assert graph.steps == ("start", "end")
    assert graph.name == "InheritsStart"


def test_source_must_be_readable():
    namespace = {"step": step}
    # exec on purpose: a class with no source file is exactly the case under test.
    exec("class Hidden:\n @step\n def start(self):\n  self.next(self.end)\n", namespace)  # noqa: S102
    with pytest.raises(InvalidFlowError, match="start"):
        graph_of(namespace["Hidden"])


# ---- access, rendering, immutability --------------------------------------------------------

def test_mapping_access():
    graph = graph_of(good.BranchFlow)
    assert "join" in graph and "nope" not in graph
    assert len(graph) == 6
    assert isinstance(graph["a"], StepNode)
    with pytest.raises(KeyError, match="did you mean|Did you mean"):
        graph["jion"]


def test_describe_mentions_every_step_and_foreach():
    text = graph_of(good.NestedForeachFlow).describe()
    for name in graph_of(good.NestedForeachFlow).steps:
        assert f"Step {name}" in text
    assert "=> inner (foreach over self.xs)" in text
    assert "=> join_outer" in text
    linear = graph_of(good.LinearFlow).describe()
    assert linear.startswith("A straight line.")
    assert "Begin here." in linear and "=> middle" in linear


@pytest.mark.parametrize("flow_cls", good.ALL_GOOD, ids=lambda c: c.__name__)
def test_to_dict_round_trips_json(flow_cls):
    graph = graph_of(flow_cls)
    data = graph.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert [s["name"] for s in data["steps"]] == list(graph.steps)
    first = data["steps"][0]
    assert first["is_start"] and first["type"] == graph[graph.start_step].type
    assert data["start_step"] == first["name"] and data["end_step"] == graph.end_step


def test_graph_and_nodes_are_immutable():
    graph = graph_of(good.BranchFlow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph["start"].name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.name = "Other"
    with pytest.raises(TypeError):
        graph.nodes["x"] = graph["start"]
    assert isinstance(graph["start"].out_funcs, tuple)


def test_graph_never_imports_ray():
    code = ("import sys, rayflow.graph; "
            "bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(REPO))


# ---- Metaflow's _graph_info ------------------------------------------------------------------

def test_graph_info_has_metaflows_shape_for_custom_endpoints():
    from rayflow.graph.info import graph_info

    info = graph_info(graph_of(good.CustomBranchFlow),
                      {"a": [{"name": "retry", "attributes": {"times": 1},
                              "statically_defined": True, "inserted_by": None}]},
                      parameters=[("alpha", "Parameter")])
    assert (info["start_step"], info["end_step"]) == ("entry", "done")
    assert info["graph_structure"] == ["entry", [["a"], ["b", [["each"]], "inner"]], "merge",
                                       "done"]
    steps = info["steps"]
    assert steps["entry"]["matching_join"] == "merge" and steps["entry"]["next"] == ["a", "b"]
    assert steps["b"]["type"] == "split-foreach" and steps["b"]["foreach_artifact"] == "items"
    assert steps["a"]["decorators"][0]["name"] == "retry" and steps["done"]["type"] == "end"
    assert info["parameters"] == [{"name": "alpha", "type": "Parameter"}]
    assert json.loads(json.dumps(info)) == info


def test_graph_info_of_a_single_step_flow():
    from rayflow.graph.info import graph_info

    info = graph_info(graph_of(good.SingleBareStepFlow))
    assert info["graph_structure"] == ["only"]
    assert info["start_step"] == info["end_step"] == "only"
