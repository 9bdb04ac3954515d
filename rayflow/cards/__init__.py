"""Cards: HTML pages a step leaves beside its task, with Metaflow's API.

    from rayflow import FlowSpec, step, card, current
    from rayflow.cards import Markdown, Table, Image, VegaChart, ProgressBar, Artifact

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
from .client import Card, CardContainer, CardNotPresentException, get_cards
from .components import (
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

__all__ = [
    "Artifact", "Card", "CardContainer", "CardNotPresentException", "Error", "Image",
    "Markdown", "MetaflowCard", "MetaflowCardComponent", "ProgressBar", "PythonCode", "Table",
    "UserComponent", "VegaChart", "get_cards",
]
