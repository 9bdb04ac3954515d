"""Metaflow's `metaflow.plugins.cards.card_client` path; see `rayflow.cards.client`."""

from rayflow.cards.client import Card, CardContainer, get_cards

__all__ = ["Card", "CardContainer", "get_cards"]
