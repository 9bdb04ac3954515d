"""A step stuck where @timeout's signal cannot reach it (SIGALRM blocked, as in C code that
masks signals): the watchdog ends it, and @catch sees a TimeoutException."""

import signal
import time

from rayflow import FlowSpec, catch, step, timeout


class StuckTimeoutFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.stuck)

    @catch(var="ex", print_exception=False)
    @timeout(seconds=1)
    @step
    def stuck(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        self.kind = self.ex.type


if __name__ == "__main__":
    StuckTimeoutFlow()
