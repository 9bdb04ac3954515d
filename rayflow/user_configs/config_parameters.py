"""Metaflow's `metaflow.user_configs.config_parameters` path: `Config`, its value
`ConfigValue`, and the delayed values of `config_expr` (implemented in rayflow.config)."""

from rayflow.config import (
    Config,
    ConfigValue,
    DelayEvaluator,
    config_expr,
    resolve_delayed,
)

resolve_delayed_evaluator = resolve_delayed

__all__ = ["Config", "ConfigValue", "DelayEvaluator", "config_expr",
           "resolve_delayed_evaluator"]
