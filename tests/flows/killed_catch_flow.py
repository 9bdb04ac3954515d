"""A step whose process is killed on every attempt: @catch still catches it."""

import os
import signal

from rayflow import FlowSpec, catch, retry, step


class KilledCatchFlow(FlowSpec):
    @step
    def start(self):
        self.before = 1
        self.next(self.doomed)

    @catch(var="ex", print_exception=False)
    @retry(times=1)
    @step
    def doomed(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.end)

    @step
    def end(self):
        assert self.before == 1
        self.kind = self.ex.type


if __name__ == "__main__":
    KilledCatchFlow()
