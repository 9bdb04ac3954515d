import ray

from rayflow import FlowSpec, resources, step


class GpuFlow(FlowSpec):
    @resources(gpu=1, cpu=0.5)
    @step
    def start(self):
        self.gpu_ids = list(ray.get_gpu_ids())
        self.next(self.cpu_only)

    @step
    def cpu_only(self):
        self.cpu_gpu_ids = list(ray.get_gpu_ids())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GpuFlow()
