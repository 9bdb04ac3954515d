"""A secrets provider of the flow's own, read in the task, that fails."""

from rayflow import FlowSpec, secrets, step
from rayflow.plugins.secrets import SecretsProvider, register_secrets_provider


@register_secrets_provider
class DownProvider(SecretsProvider):
    TYPE = "down"

    def get_secret_as_dict(self, secret_id, options={}, role=None):  # noqa: B006
        raise ConnectionError(f"backend for {secret_id} is down")


class SecretsFailingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.load)

    @secrets(sources=["down.db_password"])
    @step
    def load(self):
        self.next(self.end)

    @step
    def end(self):
        pass
