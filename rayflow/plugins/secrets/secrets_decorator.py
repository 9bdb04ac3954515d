"""`@secrets(sources=[...], role=None, allow_override=False)`: the step's environment gets the
variables its sources give, for the duration of each task (see rayflow.plugins.secrets).

Where each source is read:
- when the run starts, the driver parses every step's sources (`prepare_secrets`), so a bad
  source or an unknown type is one message before Ray starts, and reads those whose provider
  reads on the driver (`env`, `file`); their values travel to the workers in the run's
  context (memory only);
- in the task, `task_pre_step` reads the others (as Metaflow does), checks that no two sources
  and no existing variable clash, and sets them; `task_post_step` puts the environment back.

The decorator shows its sources by type and id only (`shown_attributes`): that is what
`_graph_info`, `rayflow show` and reprs see, never a source's options.
"""

from __future__ import annotations

import os

from ...decorators import StepDecorator
from ...exceptions import InvalidFlowError
from .spec import (
    SecretsError,
    check_disjoint,
    check_source_shape,
    get_secrets_backend_provider,
    parse_source,
    read_source,
)


def _shown(source):
    if isinstance(source, str):  # '<type>.<id>' holds no value
        return source
    return {k: source[k] for k in ("type", "id", "role") if source.get(k) is not None}


class SecretsDecorator(StepDecorator):
    """Metaflow's @secrets: environment variables from secret sources, for the step only."""

    name = "secrets"
    defaults = {"sources": [], "role": None, "allow_override": False}

    def validate(self) -> None:
        a = self.attributes
        if not isinstance(a["sources"], (list, tuple)):
            raise InvalidFlowError(
                f"@secrets(sources=...) is a list of sources, not a "
                f"{type(a['sources']).__name__}: e.g. sources=['env.API_TOKEN'] or "
                "sources=[{'type': 'file', 'id': '.env'}].")
        for source in a["sources"]:
            try:
                check_source_shape(source, "@secrets")
            except SecretsError as exc:
                raise InvalidFlowError(str(exc)) from None
        if a["role"] is not None and not isinstance(a["role"], str):
            raise InvalidFlowError("@secrets(role=...) is a string (or None).")
        a["sources"] = list(a["sources"])
        flag = a["allow_override"]
        if isinstance(flag, str) and flag.strip().lower() in ("true", "false", "1", "0"):
            flag = flag.strip().lower() in ("true", "1")  # --with secrets:allow_override=True
        if not isinstance(flag, bool):
            raise InvalidFlowError(f"@secrets(allow_override={flag!r}): True or False.")
        a["allow_override"] = flag

    def shown_attributes(self) -> dict:
        a = self.attributes
        return {"sources": [_shown(s) for s in a["sources"]], "role": a["role"],
                "allow_override": a["allow_override"]}

    def specs(self, step: str) -> list:
        return [parse_source(s, self.attributes["role"], step) for s in self.attributes["sources"]]

    def prepare_on_driver(self, step: str) -> list[tuple]:
        """(spec, values) per source: values read here for a provider that reads on the
        driver, None for one that reads in the task. Fails for an unknown type."""
        out = []
        for spec in self.specs(step):
            provider = get_secrets_backend_provider(spec.secrets_backend_type, step)
            on_driver = getattr(provider, "RESOLVE_ON_DRIVER", False)
            out.append((spec, read_source(spec, step, provider) if on_driver else None))
        return out

    def task_pre_step(self, flow, ctx) -> None:
        step = ctx.step_name
        prepared = getattr(ctx, "_secrets", None)  # the driver's, for this step
        ctx._secrets = None  # held no longer than needed
        if prepared is None:  # a task started without the run's context (spin)
            prepared = [(spec, None) for spec in self.specs(step)]
        pairs = [(spec, values if values is not None else read_source(spec, step))
                 for spec, values in prepared]
        check_disjoint(pairs, step, bool(self.attributes["allow_override"]))
        saved: dict[str, str | None] = {}
        for _, values in pairs:
            for name, value in values.items():
                saved.setdefault(name, os.environ.get(name))
                os.environ[name] = value
        self._saved = saved

    def task_post_step(self, flow, ctx) -> None:
        for name, old in getattr(self, "_saved", {}).items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        self._saved = {}


def prepare_secrets(decos: dict) -> dict[str, list]:
    """Step -> its @secrets sources prepared on the driver (`prepare_on_driver`), for every
    step that has @secrets: what the run's context carries to the workers."""
    out = {}
    for step, step_decos in decos.items():
        deco = step_decos.get("secrets")
        if isinstance(deco, SecretsDecorator):
            out[step] = deco.prepare_on_driver(step)
    return out
