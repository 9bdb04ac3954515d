"""A foreach of `n` splits, each sleeping `seconds`. With `marker_dir` set, each split first
writes `<index>.<node_id>.started` there, so a test can see where a split is running."""

import os
import time

import ray

from rayflow import FlowSpec, Parameter, step


class SpreadFlow(FlowSpec):
    n = Parameter("n", default=9, type=int)
    seconds = Parameter("seconds", default=0.5, type=float)
    marker_dir = Parameter("marker_dir", default="")

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.node_id = ray.get_runtime_context().get_node_id()
        if self.marker_dir:
            path = os.path.join(self.marker_dir, f"{self.index}.{self.node_id}.started")
            with open(path, "w"):
                pass
        time.sleep(self.seconds)
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.nodes = sorted({i.node_id for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SpreadFlow()
