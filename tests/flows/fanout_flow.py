"""A wide foreach straight into its join, for the streaming fan-out (runtime/fanout.py): the
join checks that it sees every split, in split order, with each split's own artifacts."""

import os

from rayflow import FlowSpec, Parameter, retry, step


class FanoutFlow(FlowSpec):
    width = Parameter("width", default=1000)
    flaky_at = Parameter("flaky_at", default=-1)  # this split fails its first attempt
    fail_at = Parameter("fail_at", default=-1)    # this split fails while the marker exists
    marker = Parameter("marker", default="")
    blob = Parameter("blob", default=0)           # bytes of a value too big to be inline

    @step
    def start(self):
        self.items = [f"item-{i}" for i in range(self.width)]
        self.shared = "inherited by every split"
        self.next(self.work, foreach="items")

    @retry(times=1)
    @step
    def work(self):
        from rayflow import current

        i = int(self.input.split("-")[1])
        if i == self.flaky_at and current.retry_count == 0:
            raise RuntimeError(f"split {i} fails its first attempt")
        if i == self.fail_at and self.marker and os.path.exists(self.marker):
            raise RuntimeError(f"split {i} was told to fail")
        self.index_seen = i
        self.out = i * 3
        self.label = f"{self.input}:{self.shared[:3]}"
        if self.blob:
            self.big = bytes([i % 256]) * self.blob
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [(inp.index_seen, inp.out, inp.label, inp.input) for inp in inputs]
        self.total = sum(inp.out for inp in inputs)
        self.shared_seen = {inp.shared for inp in inputs}
        if self.blob:
            self.big_seen = [(len(inp.big), inp.big[:1]) for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        assert self.total == 3 * self.width * (self.width - 1) // 2, self.total


if __name__ == "__main__":
    FanoutFlow()
