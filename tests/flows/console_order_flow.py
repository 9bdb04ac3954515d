"""Each task writes stdout and stderr lines in turn (tests/integration/test_console_order.py):
the console must show them prefixed `[run/step/task]`, in the order written, and no task's
lines after those of a task that follows it."""

import sys

from rayflow import FlowSpec, step


def chatter(name: str, count: int) -> None:
    for i in range(count):
        print(f"{name} out {i}")
        print(f"{name} err {i}", file=sys.stderr)


class ConsoleOrderFlow(FlowSpec):
    @step
    def start(self):
        chatter("start", 3)
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        chatter(f"work{self.input}", 3)
        self.next(self.join)

    @step
    def join(self, inputs):
        chatter("join", 2)
        self.next(self.end)

    @step
    def end(self):
        chatter("end", 2)


if __name__ == "__main__":
    ConsoleOrderFlow()
