"""A gang of two whose member 1 fails its first attempt (raises, or its process is killed)
while member 0 would run for minutes: the gang fails as one, member 0 is stopped, and @retry
runs both members again. mode=once: member 1 fails once in all (for resume); none: no
failure."""
import os
import signal
import time

from rayflow import FlowSpec, Parameter, current, parallel, retry, step

# How many times @retry runs the gang again (the tests that need a failure to stick set 0).
RETRIES = int(os.environ.get("GANG_TEST_RETRIES", "1"))


class GangRetryFlow(FlowSpec):
    mode = Parameter("mode", default="raise")     # raise | kill | once | none
    markers = Parameter("markers", default="")    # a folder: one file per member attempt

    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @retry(times=RETRIES, minutes_between_retries=0)
    @parallel
    @step
    def train(self):
        index, attempt = current.parallel.node_index, current.retry_count
        with open(os.path.join(self.markers, f"{index}.{attempt}.{os.getpid()}"), "w"):
            pass
        once = os.path.join(self.markers, "failed-once")
        if self.mode == "once" and index == 1 and not os.path.exists(once):
            open(once, "w").close()
            raise RuntimeError("member 1 failed on purpose, once")
        if attempt == 0 and self.mode in ("raise", "kill"):
            if index == 1:
                time.sleep(1)
                if self.mode == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("member 1 failed on purpose")
            time.sleep(300)  # the gang's failure must stop this member
        self.attempt_seen = attempt
        self.next(self.join)

    @step
    def join(self, inputs):
        self.attempts = sorted(i.attempt_seen for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists(os.path.join(self.markers, "fail-end")):
            raise RuntimeError("end fails on purpose")


if __name__ == "__main__":
    GangRetryFlow()
