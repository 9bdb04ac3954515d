"""Metaflow's `metaflow.plugins.cards.card_modules` path; see `rayflow.cards`."""

from rayflow.cards.base import MetaflowCard, MetaflowCardComponent

__all__ = ["MetaflowCard", "MetaflowCardComponent"]
