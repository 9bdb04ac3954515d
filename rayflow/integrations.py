"""Metaflow's `metaflow.integrations` path: `from metaflow.integrations import ArgoEvent`.
rayflow does not publish events yet; see `rayflow.unsupported`."""

from .unsupported import ArgoEvent

__all__ = ["ArgoEvent"]
