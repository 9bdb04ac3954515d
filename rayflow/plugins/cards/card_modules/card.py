"""Metaflow's `metaflow.plugins.cards.card_modules.card` path."""

from rayflow.cards.base import MetaflowCard, MetaflowCardComponent

__all__ = ["MetaflowCard", "MetaflowCardComponent"]
