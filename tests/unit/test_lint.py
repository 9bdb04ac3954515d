"""Each lint rule, fed one broken flow: the error must name the step, point at the exact
`file:line`, and say what to do. Valid flows of every shape must pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the flow files import the test `step` from _graph_helpers
    sys.path.insert(0, str(HERE))

from _graph_helpers import load_module, marked_line

from rayflow.exceptions import LintError
from rayflow.graph import RULES, FlowGraph, lint

BAD_FILE = HERE / "flows_bad" / "bad_flows.py"
bad = load_module(BAD_FILE)
good = load_module(HERE / "flows_bad" / "good_shapes.py")

# flow class -> (step the error names, words that show which rule fired)
CASES = {
    "NoStart": ("start", "no start step: no step is named *start*"),
    "NoEnd": ("end", "no end step: no step is named *end*"),
    "TwoStartMarks": ("b", "marks *a*, *b* with @step(start=True)"),
    "MarkedStartBesideStart": ("start", "*begin* is marked with @step(start=True)"),
    "MarkedEndBesideEnd": ("end", "*finish* is marked with @step(end=True)"),
    "MarkedEndHasNext": ("finish", "it is the end step"),
    "SingleStepWithNext": ("only", "a flow of one step has it as both"),
    "EdgeIntoMarkedStart": ("a", "transitions to *begin*, the start step"),
    "ReservedName": ("input", "reserved name"),
    "UnderscoreName": ("_hidden", "underscore"),
    "TooManyArgs": ("a", "takes 3 arguments"),
    "StartWithInputs": ("start", "takes 2 arguments"),
    "EndHasNext": ("end", "Remove the self.next() call"),
    "NextInsideIf": ("start", "last statement"),
    "StatementAfterNext": ("start", "last statement"),
    "MissingNext": ("a", "is missing a self.next() transition"),
    "NextWithString": ("start", "attribute of self"),
    "EmptyNext": ("start", "without a step"),
    "NextWithCondition": ("start", "switch that rayflow cannot read"),
    "NextWithNumParallel": ("start", "but does not have a @parallel decorator"),
    "NumParallelWithForeach": ("start", "both foreach= and num_parallel="),
    "ParallelNotIntoJoin": ("train", "should be followed by a join step"),
    "ParallelStep": ("train", "is not called with self.next(num_parallel=...)"),
    "SwitchWithOneTarget": ("start", "switch with 1 distinct next step"),
    "SwitchKeyNotLiteral": ("start", "switch that rayflow cannot read (key: self.a)"),
    "SwitchStraightIntoJoin": ("join", "reached straight from the switch *a*"),
    "TwoStepLoop": ("b", "a -> b -> a"),
    "ForeachNotLiteral": ("start", "string literal"),
    "UnknownTarget": ("start", "Did you mean *train*"),
    "NonStepTarget": ("start", "Add @step above `def helper`"),
    "DuplicateTarget": ("start", "more than once"),
    "EdgeIntoStart": ("a", "transitions to *start*"),
    "ForeachTwoTargets": ("start", "exactly one step per item"),
    "Cycle": ("b", "a -> b -> a"),
    "Unreachable": ("orphan", "cannot be reached"),
    "JoinWithoutInputs": ("join", "def join(self, inputs):"),
    "EndReachedFromBranches": ("end", "never joined"),
    "JoinThatSplits": ("join", "also splits"),
    "SplitWithTwoJoins": ("start", "different joins (*j1*, *j2*)"),
    "UnrelatedJoin": ("mixed", "unrelated branches"),
    "InputsOnNonJoin": ("a", "does not join anything"),
    "EndInsideForeach": ("end", "before the split at step *start*"),
}


def lint_error(flow_cls) -> LintError:
    with pytest.raises(LintError) as info:
        lint(FlowGraph.from_class(flow_cls))
    return info.value


@pytest.mark.parametrize("flow_name", sorted(CASES))
def test_bad_flow_names_step_line_and_rule(flow_name):
    step, phrase = CASES[flow_name]
    err = lint_error(getattr(bad, flow_name))
    line = marked_line(BAD_FILE, flow_name)
    where = f"{BAD_FILE}:{line}"
    msg = str(err)
    assert msg.startswith(where + ": "), msg
    assert f"*{step}*" in msg, msg
    assert phrase in msg, msg
    assert (err.step, err.line, err.file) == (step, line, str(BAD_FILE))


def test_every_bad_flow_has_a_case():
    classes = {name for name, obj in vars(bad).items()
               if isinstance(obj, type) and obj.__module__ == bad.__name__}
    assert classes == set(CASES)


def test_every_rule_is_exercised():
    """Each rule function fires for at least one bad flow: no rule is untested."""
    fired = set()
    for flow_name in CASES:
        graph = FlowGraph.from_class(getattr(bad, flow_name))
        for rule in RULES:
            try:
                rule(graph)
            except LintError:
                fired.add(rule.__name__)
                break
    assert fired == {rule.__name__ for rule in RULES}


def test_num_parallel_into_a_step_without_parallel_says_what_to_add():
    msg = str(lint_error(bad.NextWithNumParallel))
    assert "*end*" in msg and "Put @parallel above its @step" in msg


def test_parallel_step_reached_without_num_parallel_says_how_to_call_it():
    msg = str(lint_error(bad.ParallelStep))
    assert "self.next(self.train, num_parallel=N)" in msg


def test_missing_next_teaches_the_fix():
    assert "Add a self.next() as the last line in the function." in str(lint_error(bad.MissingNext))


@pytest.mark.parametrize("flow_cls", good.ALL_GOOD, ids=lambda c: c.__name__)
def test_good_flows_pass(flow_cls):
    assert lint(FlowGraph.from_class(flow_cls)) is None


def test_lint_error_is_a_user_error():
    from rayflow.exceptions import RayflowException
    err = lint_error(bad.Cycle)
    assert isinstance(err, RayflowException)
    assert err.where() == f"{BAD_FILE}:{marked_line(BAD_FILE, 'Cycle')}"
