"""Many tiny splits, so rayflow batches them; some misbehave on purpose."""

from rayflow import FlowSpec, Parameter, catch, current, retry, step


class BatchingFlow(FlowSpec):
    width = Parameter("width", default=400)
    fail_at = Parameter("fail_at", default=-1)
    flaky_at = Parameter("flaky_at", default=-1)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        if self.input == self.fail_at:
            raise ValueError(f"split {self.input} always fails")
        if self.input == self.flaky_at and current.retry_count == 0:
            raise ValueError(f"split {self.input} fails once")
        self.out = self.input * 3
        self.attempt = current.retry_count
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.caught)

    @step
    def caught(self):
        self.small = list(range(50))
        self.next(self.guarded, foreach="small")

    @catch(var="error", print_exception=False)
    @step
    def guarded(self):
        self.error = None
        if self.input == 7:
            raise KeyError("seven")
        self.value = self.input
        self.next(self.join_guarded)

    @step
    def join_guarded(self, inputs):
        self.errors = [f"{i.error.type}: {i.error.exception}" for i in inputs
                       if i.error is not None]
        self.value_sum = sum(getattr(i, "value", 0) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BatchingFlow()
