"""Splits that print lines differing only in their numbers (tests/integration/test_cli.py):
Ray would merge such lines from different workers into one "[repeated Nx]" line."""

import time

from rayflow import FlowSpec, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(8))
        self.next(self.talk, foreach="items")

    @step
    def talk(self):
        time.sleep(0.05)
        print(f"split {self.input} says 42 times hello")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChattyFlow()
