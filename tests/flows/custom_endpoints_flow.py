"""Start and end steps under names of their own (Metaflow 2.19's @step(start=True) /
@step(end=True)), around a foreach; `gather` fails while a marker file exists."""

import os

from rayflow import FlowSpec, Parameter, card, current, project, step


@project(name="endpoints")
class CustomEndpointsFlow(FlowSpec):
    marker = Parameter("marker", default="")

    @step
    def square(self):
        self.sq = self.input ** 2
        self.next(self.gather)

    @card
    @step(start=True)
    def begin(self):
        self.items = [1, 2, 3]
        self.trigger_seen = current.trigger
        self.next(self.square, foreach="items")

    @step
    def gather(self, inputs):
        if self.marker and os.path.exists(self.marker):
            raise RuntimeError("gather was told to fail")
        self.total = sum(i.sq for i in inputs)
        self.project_seen = current.project_name
        self.next(self.finish)

    @step(end=True)
    def finish(self):
        self.result = self.total + 1


if __name__ == "__main__":
    CustomEndpointsFlow()
