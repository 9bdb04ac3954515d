"""A secrets provider of the flow's own that fails on a task's first attempt and answers on
its second (tests/unit/test_runner_inline.py): @retry must run the task again; without
@retry, @catch must catch the failure."""

from rayflow import FlowSpec, catch, current, retry, secrets, step
from rayflow.plugins.secrets import SecretsProvider, register_secrets_provider


@register_secrets_provider
class FlakyProvider(SecretsProvider):
    TYPE = "flaky"

    def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
        if current.retry_count == 0:
            raise ConnectionError(f"backend for {secret_id} timed out")
        return {"RF_FLAKY_" + secret_id.upper(): f"read on attempt {current.retry_count}"}


class SecretsFlakyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.retried)

    @retry(times=1, minutes_between_retries=0)
    @secrets(sources=["flaky.token"])
    @step
    def retried(self):
        import os

        self.seen = os.environ["RF_FLAKY_TOKEN"]
        self.next(self.caught_step)

    @catch(var="failure")
    @secrets(sources=["flaky.other"])
    @step
    def caught_step(self):
        self.reached = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SecretsFlakyFlow()
