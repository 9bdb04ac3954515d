"""Metaflow's `metaflow.plugins.cards.card_modules.basic` path: the built-in card types."""

from rayflow.cards.builtin import BlankCard, DefaultCard, ErrorCard, TaskSpecCard  # noqa: F401
from rayflow.cards.components import PageComponent  # noqa: F401
