"""A foreach whose body is three steps deep before its join: each split sets, changes and
deletes artifacts on the way, and the join reads what each input saw (tests/unit)."""

from rayflow import FlowSpec, Parameter, step


class DeepJoinFlow(FlowSpec):
    n = Parameter("n", default=6, type=int)

    @step
    def start(self):
        self.shared = "from start"
        self.doomed = "deleted in b"
        self.items = list(range(self.n))
        self.next(self.a, foreach="items")

    @step
    def a(self):
        self.x = self.input * 10
        self.tag = f"a{self.input}"
        self.next(self.b)

    @step
    def b(self):
        del self.doomed
        self.x += 1
        self.next(self.c)

    @step
    def c(self):
        self.y = self.x * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.xs = [i.x for i in inputs]
        self.ys = [i.y for i in inputs]
        self.tags = [i.tag for i in inputs]
        self.shared_seen = {i.shared for i in inputs}
        self.doomed_seen = [hasattr(i, "doomed") for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeepJoinFlow()
