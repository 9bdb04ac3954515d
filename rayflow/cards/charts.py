"""Vega-Lite charts as static SVG, drawn by vl-convert (`vl-convert-python`: Vega and
Vega-Lite themselves, bundled in a native module): any Vega-Lite spec, Altair charts
included, with no browser, no JavaScript on the page and nothing fetched. A card holds the SVG
inline, so it opens offline.

A chart's data must be in the spec (`data.values`, or `datasets` by name): a card is drawn
once, where the task ran, and a chart that read a URL there would show what that URL held at
that moment, or fail on a machine without the network; so URLs are refused.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

_ID = re.compile(r'\bid="([^"]+)"')
_counter = itertools.count(1)


def spec_of(chart: Any) -> dict:
    """The Vega-Lite spec of a dict or an Altair chart (anything with `to_dict()`)."""
    if hasattr(chart, "to_dict"):
        return chart.to_dict()
    if not isinstance(chart, dict):
        raise TypeError(f"VegaChart takes a Vega-Lite spec (a dict) or an Altair chart, not "
                        f"{type(chart).__name__}")
    return chart


def render_svg(spec: Any, key: str | None = None) -> str:
    """The chart as one <svg> element. Its element ids get a prefix of their own (`key`, else
    a counter), so several charts inline in one page never share an id."""
    import vl_convert

    try:
        svg = vl_convert.vegalite_to_svg(spec_of(spec), allowed_base_urls=[])
    except ValueError as exc:
        text = str(exc)
        if "url not allowed" in text:
            raise ValueError("a card's chart must carry its data inline (data.values or "
                             "datasets): it is drawn once, where the task ran, without "
                             "fetching anything") from None
        raise ValueError(text.split("\n    at ", 1)[0].strip()) from None
    return _unique_ids(svg, re.sub(r"[^A-Za-z0-9_-]", "-", key or f"c{next(_counter)}"))


def _unique_ids(svg: str, prefix: str) -> str:
    ids = set(_ID.findall(svg))
    if not ids:
        return svg
    for name in sorted(ids, key=len, reverse=True):
        new = f"{prefix}-{name}"
        svg = (svg.replace(f'id="{name}"', f'id="{new}"')
               .replace(f"url(#{name})", f"url(#{new})")
               .replace(f'href="#{name}"', f'href="#{new}"'))
    return svg
