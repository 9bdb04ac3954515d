"""A @parallel step: a gang of `num` members, each reporting what it was told."""
import os

from rayflow import FlowSpec, Parameter, current, parallel, step


class ParallelFlow(FlowSpec):
    num = Parameter("num", default=3, type=int)

    @step
    def start(self):
        self.base = 10
        self.next(self.train, num_parallel=self.num)

    @parallel
    @step
    def train(self):
        p = current.parallel
        self.node_index = p.node_index
        self.num_nodes = p.num_nodes
        self.main_ip = p.main_ip
        self.control_task_id = p.control_task_id
        self.is_parallel = current.is_parallel
        self.item = self.input
        self.env = {k: os.environ.get(k) for k in (
            "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
        print(f"member {p.node_index} of {p.num_nodes}")
        if p.node_index % 2:
            return  # as in Metaflow, a member may end without self.next(): the graph's is used
        self.next(self.join)

    @step
    def join(self, inputs):
        self.members = sorted((i.node_index, i.item, i.num_nodes, i.control_task_id)
                              for i in inputs)
        self.ports = {i.env["MASTER_PORT"] for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParallelFlow()
