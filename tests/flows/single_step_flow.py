"""A flow of one step: it is both the start and the end (Metaflow 2.19)."""

from rayflow import FlowSpec, Parameter, step


class SingleStepFlow(FlowSpec):
    """Doubles n."""

    n = Parameter("n", default=21)

    @step
    def only(self):
        self.x = self.n * 2


if __name__ == "__main__":
    SingleStepFlow()
