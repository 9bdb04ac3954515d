"""What public Metaflow flows rely on (tests/integration/test_public_flows_on_ray.py): a parameter
whose option name differs from its attribute, a repeated option, @catch's variable, a step
that fails after setting artifacts, and the resources `--with kubernetes` gives each task."""

import os

from rayflow import FlowSpec, Parameter, catch, step


def assigned_cpus() -> float:
    import ray

    return ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)


class ParityFlow(FlowSpec):
    animal = Parameter("creature", default="dog")
    nums = Parameter("num", type=int, multiple=True)
    fail = Parameter("fail-at-work", type=bool, default=False)

    @catch(var="start_error")
    @step
    def start(self):
        self.seen = (self.animal, self.nums)
        self.cpus = assigned_cpus()
        self.env_a = os.environ.get("PARITY_A")
        self.next(self.work)

    @step
    def work(self):
        self.progress = "half way"
        if self.fail:
            raise RuntimeError("work was told to fail")
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.nums)
