"""Metaflow's `metaflow.plugins` module paths, for flows and card modules that import from
them (`from metaflow.plugins.cards.card_modules.card import MetaflowCard`). The code lives
in `rayflow.cards`."""
