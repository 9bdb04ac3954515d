"""Metaflow's `metaflow.includefile` path: `from metaflow.includefile import IncludeFile`.
The parameter lives in `rayflow.parameters`."""

from .parameters import IncludeFile

__all__ = ["IncludeFile"]
