"""ValueBox, JSONViewer, YAMLViewer, EventsTimeline and PageComponent: Metaflow's arguments,
its checks, and their HTML in rayflow's cards."""

from __future__ import annotations

import pytest

from rayflow.cards import (
    EventsTimeline,
    JSONViewer,
    Markdown,
    PageComponent,
    Table,
    ValueBox,
    YAMLViewer,
)
from rayflow.cards.html import component_html


def test_value_box_renders_and_updates():
    box = ValueBox(title="Revenue", value=1200, subtitle="Monthly", theme="danger",
                   change_indicator="Down 2%")
    box.update(value="$1.2M")
    d = box.render()
    assert d["type"] == "valueBox" and d["value"] == "$1.2M" and d["theme"] == "danger"
    html = component_html(d)
    assert 'class="valuebox danger"' in html
    for text in ("Revenue", "Monthly", "$1.2M", "Down 2%"):
        assert text in html
    assert "1,234" in component_html(ValueBox(value=1234).render())


@pytest.mark.parametrize("kwargs, error", [
    ({"value": None}, ValueError), ({"value": [1]}, TypeError), ({"value": "x" * 101}, ValueError),
    ({"value": 1e16}, ValueError), ({"value": 1, "title": "  "}, ValueError),
    ({"value": 1, "theme": "not a class"}, ValueError), ({"value": 1, "title": 3}, TypeError),
])
def test_value_box_checks_its_arguments(kwargs, error):
    with pytest.raises(error):
        ValueBox(**kwargs)


def test_json_and_yaml_viewers():
    j = JSONViewer('{"a": [1, 2]}', title="Req").render()
    assert j["json_string"] == '{\n  "a": [\n    1,\n    2\n  ]\n}' and j["title"] == "Req"
    assert JSONViewer({"when": object}).render()["json_string"].startswith('{\n  "when": "<class')
    y = YAMLViewer({"db": {"port": 5432}, "features": ["auth"]}).render()
    assert y["yaml_string"] == "db:\n  port: 5432\nfeatures:\n- auth\n" and y["title"] == "YAML"
    assert YAMLViewer("not: [json").render()["yaml_string"] == "not: [json"
    html = component_html(y)
    assert "<details" in html and "port: 5432" in html
    closed = component_html(JSONViewer({}, collapsible=False, max_height="200px").render())
    assert "<details" not in closed and "max-height:200px" in closed


def test_events_timeline_keeps_the_newest():
    tl = EventsTimeline(title="Calls", max_events=2)
    for i in range(3):
        tl.update({"n": i, "timestamp": 1000.0 + i}, style_theme="success",
                  payloads={"p": Markdown(f"**{i}**")}, finished=i == 2)
    d = tl.render()
    assert [e["metadata"]["n"] for e in d["events"]] == [2, 1]
    assert d["stats"]["total_events"] == 3 and d["stats"]["displayed_events"] == 2
    assert d["stats"]["finished"] is True
    assert d["events"][0]["payloads"]["p"]["type"] == "markdown"
    html = component_html(d)
    assert "3 events, showing 2 (finished)" in html and "<strong>2</strong>" in html
    assert "<strong>0</strong>" not in html
    with pytest.raises(TypeError, match="Payload 'p'"):
        tl.update({}, payloads={"p": Table([[1]])})
    with pytest.raises(ValueError, match="style_theme"):
        tl.update({}, style_theme="9bad")


def test_page_component_holds_components():
    d = PageComponent(title="Page", subtitle="sub", contents=[Markdown("# hi"), "raw"]).render()
    assert d["type"] == "page" and d["contents"][0]["type"] == "markdown"
    html = component_html(d)
    assert "<h2>Page</h2>" in html and "<h1>hi</h1>" in html and "raw" in html


def test_card_classes_and_metaflow_paths():
    from rayflow.cards import BlankCard, DefaultCard, ErrorCard
    from rayflow.plugins.cards.card_modules import basic, components

    assert (basic.BlankCard, basic.DefaultCard, basic.ErrorCard) == \
        (BlankCard, DefaultCard, ErrorCard)
    assert basic.PageComponent is PageComponent and components.ValueBox is ValueBox
    assert (BlankCard.type, DefaultCard.type) == ("blank", "default")
