"""A gang of `members` on the multi-node cluster: each member records its node and what the
gang told it, and the members all-reduce their ranks with gloo. mode=kill: on the first
attempt member 2 kills its own process once the group is joined, while the others wait in an
all-reduce; @retry runs the whole gang again. A `fail-end` file in `markers` fails the end
step (for resume)."""
import os
import signal
import time

from rayflow import FlowSpec, Parameter, current, parallel, retry, step


class GangFlow(FlowSpec):
    members = Parameter("members", default=4, type=int)
    mode = Parameter("mode", default="allreduce")
    markers = Parameter("markers", default="")

    @step
    def start(self):
        self.next(self.train, num_parallel=self.members)

    @retry(times=1, minutes_between_retries=0)
    @parallel
    @step
    def train(self):
        import ray
        import torch
        import torch.distributed as dist

        attempt, p = current.retry_count, current.parallel
        self.node_id = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()
        self.member, self.num_nodes, self.main_ip = p.node_index, p.num_nodes, p.main_ip
        self.world_rank = int(os.environ["RANK"])
        if self.markers:
            with open(os.path.join(self.markers, f"{p.node_index}.{attempt}.{os.getpid()}"),
                      "w"):
                pass
        dist.init_process_group("gloo", init_method="env://")
        if self.mode == "kill" and attempt == 0 and p.node_index == 2:
            time.sleep(1)
            os.kill(os.getpid(), signal.SIGKILL)
        value = torch.tensor([float(p.node_index + 1)])
        dist.all_reduce(value)
        self.reduced = float(value.item())
        dist.destroy_process_group()
        self.attempt = attempt
        self.next(self.join)

    @step
    def join(self, inputs):
        self.rows = sorted((i.member, i.node_id, i.main_ip, i.reduced, i.attempt)
                           for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if self.markers and os.path.exists(os.path.join(self.markers, "fail-end")):
            raise RuntimeError("end fails on purpose")


if __name__ == "__main__":
    GangFlow()
