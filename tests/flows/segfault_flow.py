"""A step that crashes its own process (a segfault through ctypes), after printing a line.

Each run of `crash` appends a line to `counter` first, so a test can count how often it ran.
"""

import ctypes

from rayflow import FlowSpec, Parameter, step


class SegfaultFlow(FlowSpec):
    counter = Parameter("counter", default="")

    @step
    def start(self):
        self.next(self.crash)

    @step
    def crash(self):
        if self.counter:
            with open(self.counter, "a") as fh:
                fh.write("ran\n")
        print("Crash and burn!", flush=True)
        ctypes.string_at(0)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SegfaultFlow()
