"""@card end to end on a real Ray: cards are rendered after the task is durable, read back
with get_cards, and the run report is written beside the run."""

import os

import pytest

from rayflow.cards import CardNotPresentException, get_cards
from rayflow.client import Flow
from rayflow.datastore import FlowDataStore


@pytest.fixture(scope="module")
def cards_run(ray_session, tmp_path_factory):
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    ds = str(tmp_path_factory.mktemp("cards") / "ds")
    loaded = load_flow(os.path.join(os.path.dirname(__file__), "..", "flows", "cards_flow.py"))
    values = resolve_parameters(loaded.cls, {"width": "6"})
    summary = RunLoop(loaded, values, RunOptions(datastore_url=ds, progress=False)).run()
    assert summary.successful
    return ds, summary


def _run(cards_run):
    from rayflow.client import namespace

    ds, summary = cards_run
    namespace(None)
    return Flow("CardsFlow", datastore=ds)[summary.run_id]


def test_default_card_holds_the_components(cards_run):
    run = _run(cards_run)
    (c,) = get_cards(run["start"].task)
    assert c.type == "default" and c.id is None
    html = c.get()
    assert "<h1>Start</h1>" in html and "<strong>items</strong>" in html
    assert "<th>i²</th>" in html and "<td class=\"num\">25</td>" in html
    assert "<svg" in html and "mark-line" in html          # the VegaChart, drawn inline
    assert "data:image/png;base64," in html and "one pixel" in html
    assert "not a component" not in html                    # not a component: dropped
    assert "Artifacts" in html and "<code>items</code>" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched
    assert "not a valid MetaflowCardComponent" in run["start"].task.stderr


def test_card_type_from_the_flow_file_on_batched_splits(cards_run):
    run = _run(cards_run)
    seen = {}
    for task in run["body"]:
        (c,) = get_cards(task, type="item_card")
        seen[task["item"].data] = c.get()
    assert sorted(seen) == list(range(6))
    for item, html in seen.items():
        assert f"item={item}<" in html


def test_append_without_an_editable_card_warns_and_changes_nothing(cards_run):
    run = _run(cards_run)
    task = next(iter(run["body"]))
    assert task.successful
    assert "is an editable card (item_card)" in task.stderr
    assert "nowhere to go" not in get_cards(task)[0].get()


def test_failed_render_saves_an_error_card_or_nothing(cards_run):
    run = _run(cards_run)
    task = run["join"].task
    assert task.successful
    types = [c.type for c in get_cards(task)]
    # Three decorators: blank (summary), broken (save_errors), broken (save_errors=False).
    assert types.count("broken_card") == 1 and types.count("blank") == 1
    (broken,) = get_cards(task, type="broken_card")
    assert "this card always fails" in broken.get() and "could not be rendered" in broken.get()
    with pytest.raises(CardNotPresentException, match="no card with type 'nothing'"):
        get_cards(task, type="nothing")


def test_card_by_id_and_live_refresh(cards_run):
    ds, summary = cards_run
    run = _run(cards_run)
    task = run["join"].task
    (c,) = get_cards(task, id="summary")
    assert c.type == "blank" and not c.is_runtime
    html = c.get()
    assert "merged" in html and "6 / 6" in html and "&#x27;total&#x27;: 15" in html
    assert c.get_data()["render_seq"] == "final"
    store = FlowDataStore.from_url(ds, "CardsFlow")
    names = store.storage.list(f"{store.task_path(summary.run_id, 'join', task.id)}/cards")
    assert any(n.endswith(".runtime.html") for n in names)   # refresh() saved a live card


def test_run_report_written_beside_the_run(cards_run):
    ds, summary = cards_run
    assert summary.report and os.path.isfile(summary.report)
    assert summary.report.startswith(ds) and summary.report.endswith("_report.html")
    html = open(summary.report, encoding="utf-8").read()
    assert 'id="flow-graph"' in html and 'id="timeline"' in html and 'id="step-table"' in html
    for step in ("start", "body", "join", "end"):
        assert f'data-step="{step}" data-status="done"' in html
    assert "foreach items ×6" in html
    assert "<script" not in html and "<link" not in html
    body = Flow("CardsFlow", datastore=ds)[summary.run_id]["body"].task.id
    assert f"body/{body}/cards/a0.c0.html" in html            # card links, relative


def test_rayflow_card_cli(cards_run, cli):
    ds, summary = cards_run
    pathspec = f"CardsFlow/{summary.run_id}"
    out = cli("card", pathspec, "--datastore", ds, check=0)
    assert out.stdout.strip() == summary.report
    listed = cli("card", "list", f"{pathspec}/join", "--datastore", ds, check=0).stdout
    assert "blank" in listed and "id=summary" in listed and "broken_card" in listed
    end = Flow("CardsFlow", datastore=ds)[summary.run_id]["end"].task.id
    got = cli("card", "get", f"{pathspec}/end/{end}", "--datastore", ds, check=1)
    assert "has no card" in got.stderr and "Traceback" not in got.stderr
    gone = cli("card", "CardsFlow/12345", "--datastore", ds, check=1)
    assert "does not exist" in gone.stderr and "Traceback" not in gone.stderr


def test_report_from_the_drivers_rows_matches_one_rebuilt_from_the_records(cards_run):
    import re

    from rayflow.report import build_report

    ds, summary = cards_run
    kept = open(summary.report, encoding="utf-8").read()
    rebuilt = build_report(FlowDataStore.from_url(ds, "CardsFlow"), summary.run_id)

    def part(html, tag_id):
        return re.search(rf'<(table|svg)[^>]*id="{tag_id}".*?</\1>', html, re.S).group(0)

    assert part(kept, "step-table") == part(rebuilt, "step-table")
    # The same boxes in the timeline, in the order the driver heard of them, not record order.
    boxes = re.compile(r'<rect class="task".*?</rect>')
    assert sorted(boxes.findall(part(kept, "timeline"))) == \
        sorted(boxes.findall(part(rebuilt, "timeline")))
    assert len(boxes.findall(kept)) == sum(1 for _ in rebuilt.split('class="task"')) - 1
