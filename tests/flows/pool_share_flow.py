"""A pool that holds every CPU of the test Ray (2 actors of 1 CPU on 2 CPUs), with an
idle_timeout far longer than the test: the join after the pooled step starts only if the pool
ends its actors as soon as no later step uses it. Each task notes when it ran."""

import time

from rayflow import FlowSpec, Parameter, actor_pool, resources, step


class PoolShareFlow(FlowSpec):
    width = Parameter("width", default=4, type=int)
    work = Parameter("work", default=0.3, type=float)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.infer, foreach="items")

    @resources(cpu=1)
    @actor_pool(max=2, idle_timeout=600)
    @step
    def infer(self):
        time.sleep(self.work)
        self.out = self.input * 2
        self.done_at = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.began = time.time()
        self.last_pooled = max(i.done_at for i in inputs)
        self.outs = [i.out for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
