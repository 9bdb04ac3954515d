"""Metaflow's `metaflow.user_configs` path: configs of a flow (see rayflow.config)."""
