import os
import time

from rayflow import FlowSpec, Parameter, catch, current, environment, retry, step, timeout


class DecoratorsFlow(FlowSpec):
    marker_dir = Parameter("marker_dir", default="/tmp")

    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.attempts_seen = current.retry_count
        if current.retry_count < 2:
            raise ValueError(f"flaky failure on attempt {current.retry_count}")
        self.next(self.caught)

    @catch(var="problem", print_exception=False)
    @step
    def caught(self):
        self.before = 1
        raise KeyError("boom")
        self.next(self.slow)  # unreachable, as in Metaflow's own examples

    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=2)
    @step
    def slow(self):
        self.slow_attempt = current.retry_count
        if current.retry_count == 0:
            time.sleep(30)
        self.next(self.env)

    @environment(vars={"RAYFLOW_TEST_VAR": "hello-env"})
    @step
    def env(self):
        self.env_value = os.environ.get("RAYFLOW_TEST_VAR")
        self.next(self.end)

    @step
    def end(self):
        self.env_after = os.environ.get("RAYFLOW_TEST_VAR")


if __name__ == "__main__":
    DecoratorsFlow()
