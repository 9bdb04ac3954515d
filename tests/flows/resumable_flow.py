"""Fails (or sleeps) while marker files exist, so tests can break a run and then resume it."""

import os
import time

from rayflow import FlowSpec, Parameter, step


class ResumableFlow(FlowSpec):
    width = Parameter("width", default=8)
    marker_dir = Parameter("marker_dir", default="")
    sleep = Parameter("sleep", default=0.0)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.payload = "x" * 5000  # a real blob, not an inline artifact
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.sleep:
            time.sleep(self.sleep)
        if os.path.exists(os.path.join(self.marker_dir, f"fail-{self.input}")):
            raise RuntimeError(f"split {self.input} was told to fail")
        print(f"working on {self.input}")
        self.out = self.input * 2
        self.blob = f"result-{self.input}-" + "y" * 400
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists(os.path.join(self.marker_dir, "fail-end")):
            raise RuntimeError("end was told to fail")
        self.final = self.total


if __name__ == "__main__":
    ResumableFlow()
