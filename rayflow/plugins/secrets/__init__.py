"""Metaflow's secrets API (`metaflow.plugins.secrets`): `@secrets(sources=[...])` fills a step's
environment from secret sources, each read through a `SecretsProvider`.

A source is a string, `"<type>.<id>"` or `"<id>"` (of the default type,
METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE), or a dict `{"type": ..., "id": ..., "options": {...},
"role": ...}`. A provider returns a dict of environment variable names to values for it.

Built in (see providers.py):

- `inline`: Metaflow's, for tests: `options={"env_vars": {...}}` is the secret;
- `env`: variables of the driver's environment (the process that runs `rayflow run`), named
  by `id` (several with commas), set under the same names in the step;
- `file`: a JSON object or dotenv file on the driver, `id` its path (relative to the driver's
  working directory); `options={"keys": [...]}` picks some of its keys.

A provider of your own subclasses `SecretsProvider` (a `TYPE` and `get_secret_as_dict`) and is
registered with `register_secrets_provider(cls)` (in the flow's module, or a module it imports)
or as an entry point of the group `rayflow.secrets_providers`. Providers run in the task, as in
Metaflow, unless they set `RESOLVE_ON_DRIVER = True` (as `env` and `file` do): those are read
once per run on the driver, before Ray starts, and their values go to the run's workers in
memory (the run's context in Ray's object store), never into the datastore.

Values reach the step's `os.environ` only, for the duration of the task: never a record, a
log, `_graph_info`, a card or an error message (`@secrets` shows its sources by type and id).
"""

from __future__ import annotations

import abc


class SecretsProvider(abc.ABC):
    """A secrets backend. `TYPE` is the name sources use (`{"type": TYPE, ...}`)."""

    TYPE: str | None = None
    # rayflow: read on the driver once per run (the driver's files and environment), rather
    # than in each task (a backend the workers reach with their own credentials).
    RESOLVE_ON_DRIVER = False

    @abc.abstractmethod
    def get_secret_as_dict(self, secret_id, options={}, role=None) -> dict[str, str]:  # noqa: B006
        """The secret `secret_id` as environment variables (name -> value)."""


from .spec import (  # noqa: E402 - they need SecretsProvider
    SecretSpec,
    get_secret,
    get_secrets_backend_provider,
    register_secrets_provider,
    secrets_provider_types,
)

__all__ = ["SecretsProvider", "SecretSpec", "get_secret", "get_secrets_backend_provider",
           "register_secrets_provider", "secrets_provider_types"]
