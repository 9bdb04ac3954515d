"""`metaflow.metaflow_current` under rayflow's name: `from rayflow.metaflow_current import
current`."""

from .current import Current, current  # noqa: F401 - re-exported for Metaflow's import path
