"""One step asks for a custom resource that no node of the cluster has."""

from rayflow import FlowSpec, resources, step


class UnschedulableFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.impossible)

    @resources(cpu=1, custom={"no_such_resource": 1})
    @step
    def impossible(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnschedulableFlow()
