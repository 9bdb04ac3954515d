"""Metaflow's `metaflow.plugins.cards.card_modules.components` path."""

from rayflow.cards.components import (  # noqa: F401
    Artifact,
    Error,
    EventsTimeline,
    Image,
    JSONViewer,
    Markdown,
    ProgressBar,
    PythonCode,
    Table,
    UserComponent,
    ValueBox,
    VegaChart,
    YAMLViewer,
)
