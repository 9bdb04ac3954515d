"""A foreach on an actor pool: each actor loads its "model" once (setup), then serves many
splits. Split `crash_at` kills its actor's process the first time (a marker file remembers),
split `fail_at` raises while a marker file `fail` exists (for resume), and `hold` keeps a
later, unpooled step busy so an idle pool has time to shrink before the run ends."""

import os
import time
import uuid

from rayflow import FlowSpec, Parameter, actor_pool, current, resources, step


def load_model():
    time.sleep(0.2)  # a model takes a while to load
    return {"weights": 1000, "token": uuid.uuid4().hex, "pid": os.getpid()}


class PoolFlow(FlowSpec):
    width = Parameter("width", default=12, type=int)
    crash_at = Parameter("crash_at", default=-1, type=int)
    fail_at = Parameter("fail_at", default=-1, type=int)
    marker_dir = Parameter("marker_dir", default="")
    work = Parameter("work", default=0.2, type=float)
    hold = Parameter("hold", default=0.0, type=float)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.infer, foreach="items")

    @resources(cpu=0.25, gpu=0.5)
    @actor_pool(min=0, max=3, setup=load_model, idle_timeout=1)
    @step
    def infer(self):
        import ray

        actor = current.actor
        if self.input == self.crash_at:
            marker = os.path.join(self.marker_dir, f"crashed-{self.input}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(3)  # the actor's process dies mid-task
        if self.input == self.fail_at and os.path.exists(os.path.join(self.marker_dir, "fail")):
            raise RuntimeError(f"split {self.input} was told to fail")
        time.sleep(self.work)
        self.out = self.input + actor.state["weights"]
        self.token, self.pid = actor.state["token"], actor.pid
        self.actor_index, self.tasks_before = actor.index, actor.tasks_before
        self.gpus = list(ray.get_runtime_context().get_accelerator_ids().get("GPU", []))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.outs = [i.out for i in inputs]
        self.seen = [(i.token, i.pid, i.actor_index, i.tasks_before, i.gpus) for i in inputs]
        self.next(self.linger)

    @step
    def linger(self):
        time.sleep(self.hold)
        self.next(self.end)

    @step
    def end(self):
        pass
