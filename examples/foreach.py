"""A nested foreach: regions fan out, each region fans out over its shards.

    rayflow run examples/foreach.py --regions 10 --shards 100     # 1,000 splits
"""

from rayflow import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    """Sum squares over regions x shards, with a join per level."""

    regions = Parameter("regions", default=3, help="outer foreach width")
    shards = Parameter("shards", default=4, help="inner foreach width (per region)")

    @step
    def start(self):
        self.region_names = [f"region-{i}" for i in range(self.regions)]
        self.next(self.region, foreach="region_names")

    @step
    def region(self):
        self.region_name = self.input
        self.shard_ids = list(range(self.shards))
        self.next(self.shard, foreach="shard_ids")

    @step
    def shard(self):
        self.value = self.input * self.input
        self.next(self.join_shards)

    @step
    def join_shards(self, inputs):
        self.region_total = sum(inp.value for inp in inputs)
        self.merge_artifacts(inputs, include=["region_name"])
        self.next(self.join_regions)

    @step
    def join_regions(self, inputs):
        self.totals = {inp.region_name: inp.region_total for inp in inputs}
        self.next(self.end)

    @step
    def end(self):
        expected = sum(i * i for i in range(self.shards))
        assert all(v == expected for v in self.totals.values()), self.totals
        print(f"{len(self.totals)} regions x {self.shards} shards: total "
              f"{sum(self.totals.values())}")


if __name__ == "__main__":
    ForeachFlow()
