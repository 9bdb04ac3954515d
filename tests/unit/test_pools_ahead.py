"""Which pools a step, or a step after it, uses: what lets a pool end as soon as no task still
to run can reach it (a foreach inside a foreach, a pool shared by two steps, a loop)."""

from rayflow import FlowSpec, actor_pool, step
from rayflow.graph.nodes import FlowGraph
from rayflow.runtime.pools import pools_ahead


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.ys = [1, 2]
        self.next(self.inner, foreach="ys")

    @actor_pool(name="shared")
    @step
    def inner(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.again)

    @actor_pool(name="shared")
    @step
    def again(self):
        self.next(self.last)

    @actor_pool
    @step
    def last(self):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_pools_ahead_follow_the_graph():
    graph = FlowGraph.from_class(NestedFlow)
    step_pool = {"inner": "shared", "again": "shared", "last": "last"}
    here, after = pools_ahead(graph, step_pool)
    assert here["start"] == here["outer"] == {"shared", "last"}
    # The inner foreach's last split done: its pool is still needed by `again`.
    assert after["inner"] == {"shared", "last"}
    assert after["again"] == {"last"} and here["again"] == {"shared", "last"}
    assert after["last"] == set() and here["end"] == set()
