"""Metaflow's `metaflow.plugins.cards.exception` path."""

from rayflow.cards.client import CardNotPresentException

__all__ = ["CardNotPresentException"]
