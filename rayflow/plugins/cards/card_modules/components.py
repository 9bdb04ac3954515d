"""Metaflow's `metaflow.plugins.cards.card_modules.components` path."""

from rayflow.cards.components import (  # noqa: F401
    Artifact,
    Error,
    Image,
    Markdown,
    ProgressBar,
    PythonCode,
    Table,
    UserComponent,
    VegaChart,
)
