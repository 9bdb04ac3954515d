"""A foreach over an UnboundedForeachInput: refused when the step fans out."""

from rayflow import FlowSpec, step
from rayflow.unbounded_foreach import UnboundedForeachInput


class Endless(UnboundedForeachInput):
    def __iter__(self):
        return iter(range(3))


class UnboundedFlow(FlowSpec):
    @step
    def start(self):
        self.items = Endless()
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnboundedFlow()
