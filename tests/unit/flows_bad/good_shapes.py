"""Valid flows of every shape the graph must handle. They live beside the bad flows so that
test_graph.py and test_lint.py share them, and so their line numbers stay put."""

from _graph_helpers import deco, step


class LinearFlow:
    """A straight line."""

    @deco("retry", times=2)
    @deco("resources", cpu=2)
    @step
    def start(self):
        """Begin here."""
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        """All done."""


class BranchFlow:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a2)

    @step
    def a2(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachFlow:
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class NestedForeachFlow:
    @step
    def start(self):
        self.next(self.outer)

    @step
    def outer(self):
        self.xs = "ab"
        self.next(self.inner, foreach="xs")

    @step
    def inner(self):
        self.ys = "cd"
        self.next(self.body, foreach="ys")

    @step
    def body(self):
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class BranchInForeachFlow:
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.next(self.p, self.q)

    @step
    def p(self):
        self.next(self.inner_join)

    @step
    def q(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ForeachInBranchFlow:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = [1, 2]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.next(self.foreach_join)

    @step
    def foreach_join(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class JoinThenSplitFlow:
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.join1)

    @step
    def b(self):
        self.next(self.join1)

    @step
    def join1(self, inputs):
        self.next(self.fan)

    @step
    def fan(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join2)

    @step
    def join2(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SplitStraightIntoJoinFlow:
    """A static split where one branch is the join itself."""

    @step
    def start(self):
        self.next(self.a, self.join)

    @step
    def a(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchFlow:
    """A switch: one of three steps runs, and they meet again at end (not a join)."""

    @step
    def start(self):
        self.choice = "b"
        self.next({"a": self.a, "b": self.b, "c": self.c}, condition="choice")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def c(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class RecursiveSwitchFlow:
    """A switch whose case runs the same step again."""

    @step
    def start(self):
        self.next(self.loop)

    @step
    def loop(self):
        self.go = "again"
        self.next({"again": self.loop, "done": self.after}, condition="go")

    @step
    def after(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchInForeachFlow:
    """A switch inside a foreach body; the foreach join takes every split."""

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.kind = "odd"
        self.next({"odd": self.odd, "even": self.even}, condition="kind")

    @step
    def odd(self):
        self.next(self.join)

    @step
    def even(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchInBranchFlow:
    """A static split with a switch in one branch: its join waits for one task per branch."""

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.pick = "x"
        self.next({"x": self.x, "y": self.y}, condition="pick")

    @step
    def x(self):
        self.next(self.join)

    @step
    def y(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class BranchInSwitchFlow:
    """A switch one of whose cases splits and joins before the cases meet again."""

    @step
    def start(self):
        self.mode = "split"
        self.next({"split": self.fan, "skip": self.skip}, condition="mode")

    @step
    def fan(self):
        self.next(self.p1, self.p2)

    @step
    def p1(self):
        self.next(self.join)

    @step
    def p2(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def skip(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class CustomNamedFlow:
    """Start and end marked, under names of their own (Metaflow 2.19)."""

    @step
    def body(self):
        self.next(self.finish)

    @step(start=True)
    def begin(self):
        self.next(self.body)

    @step(end=True)
    def finish(self):
        pass


class CustomBranchFlow:
    @step(start=True)
    def entry(self):
        self.items = [1, 2]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.merge)

    @step
    def b(self):
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.inner)

    @step
    def inner(self, inputs):
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.next(self.done)

    @step(end=True)
    def done(self):
        pass


class SingleStepFlow:
    @step(start=True, end=True)
    def only(self):
        self.x = 1


class SingleBareStepFlow:
    @step
    def only(self):
        self.x = 1


class MarkedEndNamedStartFlow:
    """A step named start, and an end marked under another name."""

    @step
    def start(self):
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        pass


ALL_GOOD = [LinearFlow, BranchFlow, ForeachFlow, NestedForeachFlow, BranchInForeachFlow,
            ForeachInBranchFlow, JoinThenSplitFlow, SplitStraightIntoJoinFlow, SwitchFlow,
            RecursiveSwitchFlow, SwitchInForeachFlow, SwitchInBranchFlow, BranchInSwitchFlow,
            CustomNamedFlow, CustomBranchFlow, SingleStepFlow, SingleBareStepFlow,
            MarkedEndNamedStartFlow]
SWITCHES = [SwitchFlow, RecursiveSwitchFlow, SwitchInForeachFlow, SwitchInBranchFlow,
            BranchInSwitchFlow]
