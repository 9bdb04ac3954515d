"""A local module the multi-node flows import from a step. It reaches every node only through
Ray's runtime_env working_dir, so importing it on a node proves the flow's folder was shipped."""

import os


def where() -> str:
    """This module's folder, as seen from the node that imported it."""
    return os.path.dirname(os.path.abspath(__file__))


def square(x: int) -> int:
    return x * x
