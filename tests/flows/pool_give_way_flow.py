"""A pool still needed later (`again` uses it) sits idle while `join` and `work` wait for the
CPUs its actors hold (2 actors of 1 CPU on the test Ray's 2 CPUs, idle_timeout far longer than
the test): they run only if the idle actors give way. Each task notes when it ran."""

import time

from rayflow import FlowSpec, Parameter, actor_pool, resources, step


class PoolGiveWayFlow(FlowSpec):
    width = Parameter("width", default=4, type=int)
    work = Parameter("work", default=0.3, type=float)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.infer, foreach="items")

    @resources(cpu=1)
    @actor_pool(name="model", max=2, idle_timeout=600)
    @step
    def infer(self):
        time.sleep(self.work)
        self.done_at = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.began = time.time()
        self.last_pooled = max(i.done_at for i in inputs)
        self.next(self.fan)

    @step
    def fan(self):
        self.parts = [0, 1]
        self.next(self.work_step, foreach="parts")

    @resources(cpu=1)
    @step
    def work_step(self):
        self.began = time.time()
        time.sleep(self.work)
        self.next(self.join2)

    @step
    def join2(self, inputs):
        self.work_began = [i.began for i in inputs]
        self.next(self.again)

    @resources(cpu=1)
    @actor_pool(name="model", max=2, idle_timeout=600)
    @step
    def again(self):
        self.next(self.end)

    @step
    def end(self):
        pass
