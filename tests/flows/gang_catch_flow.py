"""@catch and @timeout on a gang: member 0 raises, member 1 overruns its @timeout; each
member's failure is caught in its own task and the gang goes on to the join."""
import time

from rayflow import FlowSpec, catch, current, parallel, step, timeout


class GangCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @catch(var="failure")
    @timeout(seconds=4)
    @parallel
    @step
    def train(self):
        self.member = current.parallel.node_index
        if self.member == 0:
            raise ValueError("member 0 failed on purpose")
        time.sleep(120)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.caught = sorted((i.member, str(i.failure.type)) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GangCatchFlow()
