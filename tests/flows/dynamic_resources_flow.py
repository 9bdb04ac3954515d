"""Each split asks for what its own item needs: big items get a GPU."""

import ray

from rayflow import FlowSpec, resources, step


class DynamicResourcesFlow(FlowSpec):
    @step
    def start(self):
        self.jobs = [{"name": "small", "gpus": 0}, {"name": "big", "gpus": 1},
                     {"name": "huge", "gpus": 2}, {"name": "tiny", "gpus": 0}]
        self.next(self.work, foreach="jobs")

    @resources(cpu=0.5, gpu=lambda job: job["gpus"])
    @step
    def work(self):
        self.name_ = self.input["name"]
        self.gpu_ids = list(ray.get_gpu_ids())
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = {i.name_: len(i.gpu_ids) for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DynamicResourcesFlow()
