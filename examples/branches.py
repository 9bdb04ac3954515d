"""Static branches that run at the same time, then a join with merge_artifacts.

    rayflow run examples/branches.py
"""

from rayflow import FlowSpec, Parameter, step


class BranchFlow(FlowSpec):
    """Two branches compute different things from the same input; the join merges them."""

    size = Parameter("size", default=1000, help="how many numbers to sum")

    @step
    def start(self):
        self.numbers = list(range(self.size))
        self.unit = "count"
        self.next(self.sum_even, self.sum_odd)

    @step
    def sum_even(self):
        self.even = sum(n for n in self.numbers if n % 2 == 0)
        self.next(self.join)

    @step
    def sum_odd(self):
        self.odd = sum(n for n in self.numbers if n % 2 == 1)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = inputs.sum_even.even + inputs.sum_odd.odd
        self.merge_artifacts(inputs, exclude=["even", "odd"])
        self.next(self.end)

    @step
    def end(self):
        assert self.total == sum(self.numbers)
        print(f"total {self.total} over {len(self.numbers)} numbers ({self.unit})")


if __name__ == "__main__":
    BranchFlow()
