from rayflow import FlowSpec, Parameter, step


class FailingFlow(FlowSpec):
    fail = Parameter("fail", default=True, type=bool)

    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.fail and self.input == 3:
            raise RuntimeError("split three is broken")
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
