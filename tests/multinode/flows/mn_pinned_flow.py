"""One step pinned to node_c by a custom resource: after node_c is gone, nothing can run it."""

from rayflow import FlowSpec, resources, step


class PinnedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.pinned)

    @resources(cpu=1, custom={"node_c": 1})
    @step
    def pinned(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PinnedFlow()
