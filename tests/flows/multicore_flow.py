"""parallel_map and profile inside a step running on Ray."""

from rayflow import FlowSpec, parallel_map, profile, step


class MulticoreFlow(FlowSpec):

    @step
    def start(self):
        base = 100
        self.timings = {}
        with profile("squares", stats_dict=self.timings):
            self.squares = parallel_map(lambda x: base + x * x, range(10), max_parallel=4)
        with profile("printed"):
            pass
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MulticoreFlow()
