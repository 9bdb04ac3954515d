"""Metaflow's `metaflow.plugins.cards` path; see `rayflow.cards`."""
