"""The flow graph: read a FlowSpec class (and the AST of each step) into an immutable FlowGraph,
then lint it. This package never imports ray."""

from rayflow.graph.lint import RESERVED_STEP_NAMES, RULES, lint
from rayflow.graph.nodes import STEP_TYPES, FlowGraph, StepNode
from rayflow.graph.parse import IssueKind, ParseIssue

__all__ = [
           "RESERVED_STEP_NAMES",
           "RULES",
           "STEP_TYPES",
           "FlowGraph",
           "IssueKind",
           "ParseIssue",
           "StepNode",
           "lint",
]
