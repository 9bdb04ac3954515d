"""The helpers of `metaflow.util` that flows and tests import."""

from __future__ import annotations


def is_stringish(x) -> bool:
    """True for str, bytes and bytearray, as in Metaflow."""
    return isinstance(x, (str, bytes, bytearray))


def to_unicode(x) -> str:
    return x.decode("utf-8") if isinstance(x, (bytes, bytearray)) else str(x)
