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


ALL_GOOD = [LinearFlow, BranchFlow, ForeachFlow, NestedForeachFlow, BranchInForeachFlow,
            ForeachInBranchFlow, JoinThenSplitFlow, SplitStraightIntoJoinFlow]
