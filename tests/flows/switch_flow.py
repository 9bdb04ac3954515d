"""Switches and recursion: a recursive step inside a foreach, then a switch on a parameter.

Each split counts up to its item in a step that runs itself again (`loop`); the join checks
every split looped exactly as often as it should; `route` takes the case `mode` names.
While a file `fail-N` exists in `marker_dir`, split 1 fails on iteration N (to test resume).
"""

import os

from rayflow import FlowSpec, Parameter, current, step


class SwitchFlow(FlowSpec):
    mode = Parameter("mode", default="left")
    marker_dir = Parameter("marker_dir", default="")

    @step
    def start(self):
        self.items = [2, 4, 1]
        self.next(self.prepare, foreach="items")

    @step
    def prepare(self):
        self.target = self.input
        self.count = 0
        self.ids = []
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        marker = os.path.join(self.marker_dir, f"fail-{self.count}")
        if self.index == 1 and self.marker_dir and os.path.exists(marker):
            raise RuntimeError(f"split 1 fails on iteration {self.count}")
        self.ids = self.ids + [current.task_id]
        self.again = self.count < self.target
        self.next({True: self.loop, False: self.done}, condition="again")

    @step
    def done(self):
        assert self.count == self.target == self.input, (self.count, self.target, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.counts = [inp.count for inp in inputs]
        self.ids = [inp.ids for inp in inputs]
        self.next(self.route)

    @step
    def route(self):
        self.next({"left": self.left, "right": self.right}, condition="mode")

    @step
    def left(self):
        self.side = "left"
        self.next(self.end)

    @step
    def right(self):
        self.side = "right"
        self.next(self.end)

    @step
    def end(self):
        assert self.counts == [2, 4, 1], self.counts


if __name__ == "__main__":
    SwitchFlow()
