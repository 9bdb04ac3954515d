"""Cards' pure logic: Markdown, the Vega-Lite drawing, components, which card `current.card`
edits, and the timeline's aggregate mode."""

import pyarrow as pa
import pytest

from rayflow.cards import Artifact, Markdown, MetaflowCard, ProgressBar, Table, VegaChart
from rayflow.cards.base import card_class
from rayflow.cards.charts import render_svg
from rayflow.cards.collector import CardComponentCollector
from rayflow.cards.html import component_html, markdown
from rayflow.report.graph import graph_svg
from rayflow.report.timeline import BINS, MAX_BOXES, timeline_svg


def test_markdown_blocks_and_inline():
    html = markdown("# Title\n\nSome *em* and **strong** and `co<de>`.\n\n- a\n- b\n\n"
                    "1. one\n2. two\n\n```py\nx = 1 < 2\n```\n\n> quoted\n\n"
                    "| h1 | h2 |\n|---|---|\n| c1 | c2 |\n\n[link](http://x.y) <b>raw</b> "
                    "~~gone~~ [bad](javascript:alert(1))")
    flat = html.replace("\n", "")
    assert "<h1>Title</h1>" in html
    assert "<em>em</em>" in html and "<strong>strong</strong>" in html
    assert "<code>co&lt;de&gt;</code>" in html
    assert "<ul><li>a</li><li>b</li></ul>" in flat and "<ol><li>one</li>" in flat
    assert "x = 1 &lt; 2" in html and "<blockquote>" in html
    assert "<th>h1</th>" in html and "<td>c2</td>" in html
    assert '<a href="http://x.y">link</a>' in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html          # raw HTML is shown, not run
    assert "<s>gone</s>" in html
    assert "javascript:" not in html.replace("[bad](javascript:alert(1))", "")
    # What the hand-written converter got wrong: nested lists, emphasis inside words,
    # a fence's info string, reference links.
    nested = markdown("- a\n  - b\n- c\n\nsnake_case_name and [ref][r]\n\n[r]: http://r.s")
    assert "<ul>\n<li>a\n<ul>\n<li>b</li>" in nested
    assert "snake_case_name" in nested and '<a href="http://r.s">ref</a>' in nested


VALUES = [{"k": "a", "v": 1, "g": "x"}, {"k": "b", "v": 3, "g": "y"}]


@pytest.mark.parametrize("mark", ["bar", "line", "area", "point", "circle", "square", "tick",
                                  "rule", "text", "arc", "rect", "boxplot"])
def test_vega_marks_draw(mark):
    enc = {"x": {"field": "k", "type": "nominal"}, "y": {"field": "v", "type": "quantitative"},
           "color": {"field": "g", "type": "nominal"}}
    if mark == "text":
        enc["text"] = {"field": "v"}
    if mark == "arc":
        enc = {"theta": {"field": "v", "type": "quantitative"},
               "color": {"field": "k", "type": "nominal"}}
    svg = render_svg({"mark": mark, "title": "Chart T", "data": {"values": VALUES},
                      "encoding": enc})
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert ">Chart T<" in svg and "<script" not in svg


def test_vega_specs_beyond_a_subset_and_errors():
    values = [{"x": i % 3, "y": float(i)} for i in range(30)]
    hist = render_svg({"mark": "bar", "data": {"values": values},
                       "encoding": {"x": {"field": "y", "bin": True},
                                    "y": {"aggregate": "count"}}})
    assert "Count of Records" in hist
    # What the old subset renderer refused: facets, transforms, concatenation, selections.
    faceted = render_svg({"data": {"values": values}, "transform": [
        {"calculate": "datum.y * 2", "as": "y2"}],
        "facet": {"field": "x", "type": "nominal"},
        "spec": {"mark": "point", "encoding": {"x": {"field": "y", "type": "quantitative"},
                                               "y": {"field": "y2", "type": "quantitative"}}}})
    assert faceted.count('class="mark-symbol') == 3
    concat = render_svg({"data": {"values": values}, "hconcat": [
        {"mark": "line", "encoding": {"x": {"field": "y", "type": "quantitative"},
                                      "y": {"field": "x", "type": "quantitative"}}},
        {"mark": "bar", "encoding": {"x": {"field": "x", "type": "ordinal"},
                                     "y": {"aggregate": "sum", "field": "y"}}}]})
    assert "Sum of y" in concat
    with pytest.raises(ValueError, match="inline"):
        render_svg({"mark": "bar", "data": {"url": "http://example.com/x.json"},
                    "encoding": {"x": {"field": "a", "type": "nominal"}}})
    # In a card, a chart that cannot be drawn is an error box, not a failed card.
    assert "could not be drawn" in component_html(VegaChart({"mark": "nope"}).render())
    with pytest.raises(TypeError, match="Altair"):
        VegaChart([1, 2])


def test_vega_accepts_altair_charts_and_ids_stay_unique():
    alt = pytest.importorskip("altair")
    import pandas as pd

    chart = alt.Chart(pd.DataFrame(VALUES)).mark_bar().encode(x="k", y="v").properties(
        title="From Altair")
    html = component_html(VegaChart(chart).render())
    assert "From Altair" in html and "<svg" in html
    spec = {"mark": {"type": "bar", "clip": True}, "data": {"values": VALUES},
            "encoding": {"x": {"field": "k", "type": "nominal"},
                         "y": {"field": "v", "type": "quantitative",
                               "scale": {"domain": [0, 2]}}}}
    one, two = render_svg(spec, "a"), render_svg(spec, "b")
    import re

    ids = re.findall(r'id="([^"]+)"', one + two)
    assert ids and len(ids) == len(set(ids))
    for ref in re.findall(r"url\(#([^)]+)\)", one):
        assert ref in ids


def test_table_from_arrow_pandas_and_cells():
    t = Table.from_dataframe(pa.table({"a": [1, 2], "b": ["x", "y"]}))
    r = t.render()
    assert r["headers"] == ["a", "b"] and r["data"] == [[1, "x"], [2, "y"]]
    pd = pytest.importorskip("pandas")
    big = pd.DataFrame({"v": range(1500)})
    r = Table.from_dataframe(big).render()
    assert len(r["data"]) == 1000 and "1,500" in r["truncated"]
    nested = Table([[Markdown("**b**"), 3]], headers=["m", "n"]).render()
    assert "<strong>b</strong>" in component_html(nested)
    assert "40.0%" in component_html(ProgressBar(max=10, value=4).render())
    assert "[0, 1, 2" in Artifact(list(range(1000))).render()["data"]


def _collector(*attrs):
    c = CardComponentCollector()
    for a in attrs:
        c._add_card({"type": "default", **a})
    c._finalize()
    return c


def test_default_editable_card_rules():
    one = _collector({"type": "blank", "id": "x"})
    one.append(Markdown("a"))
    assert len(one["x"].components) == 1                  # the only editable card, id or not
    two = _collector({"type": "blank", "id": "x"}, {"type": "default"})
    two.append(Markdown("a"))
    assert len(two._cards[1].components) == 1             # the one without an id
    ambiguous = _collector({"type": "blank", "id": "x"}, {"type": "default", "id": "y"})
    ambiguous.append(Markdown("a"))                       # no single one: ignored
    assert all(not any(isinstance(c, Markdown) for c in m.components) for m in ambiguous._cards)
    custom = _collector({"type": "blank"}, {"type": "default"},
                        {"type": "default", "customize": True})
    custom.append(Markdown("a"))
    assert len(custom._cards[2].components) == 1
    fixed = _collector({"type": "taskspec_card", "id": "t"})
    fixed["t"].append(Markdown("by id"))                  # not editable, but reachable by id
    assert len(fixed["t"].components) == 1
    assert fixed["nope"] == []
    assert fixed.get(type="taskspec_card") and not fixed.get(type="other")


def test_card_types_register_by_subclassing():
    class MineCard(MetaflowCard):
        type = "unit_test_mine"

    assert card_class("unit_test_mine") is MineCard
    assert card_class("default").ALLOW_USER_COMPONENTS
    assert card_class("test_editable_card") is not None    # Metaflow's test cards ship too
    assert card_class("no_such_type") is None


def test_timeline_boxes_then_bins():
    small = [("s", str(i), 1.0 + i, i + 1.5, "n", 1 + i % 2, True) for i in range(50)]
    svg = timeline_svg(small, ["s"])
    assert svg.count('class="task"') == 50 and 'data-lanes="2"' in svg
    big = [("s", str(i), 1 + i / 1000, 1 + i / 1000 + 0.01, "n", i % 4, i % 97 != 0)
           for i in range(100_000)]
    svg = timeline_svg(big, ["s"])
    assert 'class="task"' not in svg
    assert svg.count('class="bin"') <= 4 * BINS and len(svg) < 400_000
    assert MAX_BOXES < 100_000


def test_graph_picture_marks_status_and_width():
    steps = [{"name": "start", "type": "start", "next": ["body"], "foreach": "xs"},
             {"name": "body", "type": "linear", "next": ["join"]},
             {"name": "join", "type": "join", "next": ["end"]},
             {"name": "end", "type": "end", "next": []}]
    svg = graph_svg(steps, {"start": "done", "body": "failed"}, {"body": 1234})
    assert 'data-step="body" data-status="failed"' in svg and "×1,234" in svg
    assert 'data-step="end" data-status="not-run"' in svg


def test_transform_flow_graph_takes_both_shapes():
    from rayflow.plugins.cards.card_modules.basic import transform_flow_graph

    new = transform_flow_graph({"start_step": "begin", "end_step": "finish", "steps": {
        "begin": {"type": "split-foreach", "next": ["x"], "doc": "", "matching_join": "j"},
        "finish": {"type": "end", "next": [], "doc": ""}}})
    assert (new["start_step"], new["end_step"]) == ("begin", "finish")
    assert new["steps"]["begin"]["type"] == "foreach" and new["steps"]["begin"]["box_ends"] == "j"
    old = transform_flow_graph({"start": {"type": "start", "next": ["end"], "doc": ""},
                                "end": {"type": "end", "next": [], "doc": ""}})
    assert (old["start_step"], old["end_step"]) == ("start", "end")


def test_trigger_events_newest_first():
    from datetime import datetime

    from rayflow.events import MetaflowEvent, Trigger

    trigger = Trigger([{"name": "a", "id": "1", "timestamp": 100, "type": "event"},
                       {"name": "b", "id": "2", "timestamp": 200, "type": "event"}])
    assert [e.name for e in trigger] == ["b", "a"] and trigger.event.name == "b"
    assert trigger["a"] == MetaflowEvent("a", "1", datetime.fromtimestamp(100), "event")
    assert "b" in trigger and "c" not in trigger and trigger.runs is None
    assert Trigger().event is None and Trigger().events is None
