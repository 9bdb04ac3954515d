"""Cards: HTML pages a step leaves beside its task, with Metaflow's API.

    from rayflow import FlowSpec, step, card, current
    from rayflow.cards import Markdown, Table, Image, VegaChart, ProgressBar, Artifact, ValueBox

    @card(type="blank", id="report")
    @step
    def train(self):
        current.card.append(Markdown("# Loss"))
        current.card["report"].append(VegaChart(spec))

Read them back with `get_cards(task)` (a list of `Card`, each with `.get()` for its HTML), or
on the command line with `rayflow card <flow>/<run>/<step>/<task>`. Write a card type by
subclassing `MetaflowCard` (see `rayflow.cards.base`).
"""

from .base import MetaflowCard, MetaflowCardComponent
from .builtin import BlankCard, DefaultCard, ErrorCard
from .client import Card, CardContainer, CardNotPresentException, get_cards
from .components import (
    Artifact,
    Error,
    EventsTimeline,
    Image,
    JSONViewer,
    Markdown,
    PageComponent,
    ProgressBar,
    PythonCode,
    Table,
    UserComponent,
    ValueBox,
    VegaChart,
    YAMLViewer,
)

__all__ = [
    "Artifact", "BlankCard", "Card", "CardContainer", "CardNotPresentException",
    "DefaultCard", "Error", "ErrorCard", "EventsTimeline", "Image", "JSONViewer", "Markdown",
    "MetaflowCard", "MetaflowCardComponent", "PageComponent", "ProgressBar", "PythonCode",
    "Table", "UserComponent", "ValueBox", "VegaChart", "YAMLViewer", "get_cards",
]
