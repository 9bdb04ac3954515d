"""The run report's pictures and numbers, read from the SVG and HTML they make: labels never
clipped, ticks that tell sub-second times apart, step colours that cannot pass for a status,
one duration never negative, and the Ray named as the run recorded it."""

import colorsys
import re

import pytest

from rayflow.datastore.records import RunRecord
from rayflow.report import ray_described
from rayflow.report.failures import format_duration, resume_command, run_duration
from rayflow.report.graph import STATUS_COLOURS, graph_svg
from rayflow.report.textwidth import text_width
from rayflow.report.timeline import FAILED, PALETTE, time_ticks, timeline_svg


def _svg_width(svg: str) -> float:
    return float(re.search(r'<svg[^>]* width="([\d.]+)"', svg).group(1))


def test_foreach_labels_and_long_step_names_fit_the_picture():
    steps = [{"name": "start", "type": "split-foreach", "next": ["region"],
              "foreach": "region_names_from_the_settings_file"},
             {"name": "region", "type": "split-foreach", "next": ["shard"],
              "foreach": "shards"},
             {"name": "shard", "type": "linear", "next": ["a_step_with_a_rather_long_name"]},
             {"name": "a_step_with_a_rather_long_name", "type": "join", "next": ["end"]},
             {"name": "end", "type": "end", "next": []}]
    svg = graph_svg(steps, {}, {"region": 12, "shard": 123_456})
    width = _svg_width(svg)
    labels = re.findall(r'<text class="edge-label" x="([\d.]+)"[^>]*data-width="([\d.]+)">'
                        r'([^<]*)</text>', svg)
    assert [t for _, _, t in labels] == ["foreach region_names_from_the_settings_file ×12",
                                         "foreach shards ×123,456"]
    for x, w, text in labels:
        assert float(x) + float(w) <= width, text
        assert float(w) >= text_width(text, 11) - 0.1
    # Every box as wide as its name: the whole name is drawn, none cut.
    box_w = float(re.search(r'data-step="start".*?<rect x="[\d.]+" y="[\d.]+" '
                            r'width="([\d.]+)"', svg).group(1))
    assert ">a_step_with_a_rather_long_name</text>" in svg
    assert box_w >= text_width("a_step_with_a_rather_long_name", 13, bold=True) + 18


def test_text_width_is_not_less_than_a_common_font_draws():
    # DejaVu Sans draws "foreach region_names" 11 px high about 123 px wide.
    assert text_width("foreach region_names", 11) >= 120
    assert text_width("iiii", 10) < text_width("mmmm", 10)


@pytest.mark.parametrize("span", [0.004, 0.03, 0.25, 0.4, 0.9, 3.2, 17, 95, 200, 1000,
                                  7200, 90_000])
def test_ticks_are_distinct_and_round(span):
    ticks = time_ticks(span)
    labels = [label for _, label in ticks]
    assert 3 <= len(ticks) <= 8, ticks
    assert len(set(labels)) == len(labels), labels
    assert ticks[0] == (0, "0") or ticks[0][1] == "0"
    assert ticks[-1][0] <= span + 1e-9


def test_sub_second_timeline_reads_apart():
    tasks = [("s", str(i), 100 + i * 0.05, 100 + i * 0.05 + 0.04, "n@h", 1, True)
             for i in range(8)]
    svg = timeline_svg(tasks, ["s"])
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', svg)
    assert len(set(ticks)) == len(ticks) >= 3 and "0.0 s" not in ticks, ticks


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hls(r, g, b)[0] * 360


def test_step_colours_are_never_status_colours():
    status_hues = [_hue(c) for k, c in STATUS_COLOURS.items() if k != "not-run"] + [_hue(FAILED)]
    for colour in PALETTE:
        for hue in status_hues:
            gap = min(abs(_hue(colour) - hue), 360 - abs(_hue(colour) - hue))
            assert gap >= 40, (colour, hue)
    assert len(set(PALETTE)) == len(PALETTE) >= 10
    # A failed task is outlined too, whatever its step's colour.
    svg = timeline_svg([("end", "1", 1.0, 2.0, "n", 1, False)], ["a"] * 9 + ["end"])
    assert re.search(r'class="task failed"[^>]*fill="#d64545"[^>]*stroke=', svg)


def test_one_duration_never_negative():
    rec = RunRecord("F", "1", started_at=1000.0, finished_at=1010.0)
    assert run_duration(rec) == 10.0
    rec.tasks_started_at, rec.tasks_finished_at = 1002.0, 1005.5
    assert run_duration(rec) == 3.5
    # A resume whose tasks were all cloned: clones count when this run cloned them; an
    # older record whose end task kept its origin's time never reads negative.
    rec.tasks_started_at = rec.tasks_finished_at = 1003.0
    assert run_duration(rec) == 0.0
    old = RunRecord("F", "2", started_at=1000.0, finished_at=917.0)
    assert run_duration(old) == 0.0
    assert format_duration(0.4217) == "0.42 s" and format_duration(83.2) == "83.2 s"
    assert format_duration(245) == "4 min 05 s"


def test_ray_named_as_recorded():
    rec = RunRecord("F", "1", ray_kind="warm", ray_address="127.0.0.1:6380")
    assert ray_described(rec).startswith("the warm local Ray at 127.0.0.1:6380")
    rec.ray_kind, rec.ray_address = "embedded", None
    assert ray_described(rec).startswith("embedded")
    rec.ray_kind, rec.ray_address = "cluster", "ray://head:10001"
    assert ray_described(rec) == "the cluster at ray://head:10001"


def test_resume_command_names_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAYFLOW_DATASTORE", raising=False)
    (tmp_path / "my flow.py").write_text("")
    default = str(tmp_path / ".rayflow")
    plain = resume_command(str(tmp_path / "my flow.py"), "17", default)
    assert plain == "rayflow resume 'my flow.py' --origin-run-id 17"
    other = resume_command(str(tmp_path / "my flow.py"), "17", "s3://b/p", "ray://h:1")
    assert other.endswith("--datastore s3://b/p --address ray://h:1")


def test_a_batch_of_one_split_counts_its_duration_once():
    from array import array
    from types import SimpleNamespace

    from rayflow.report.rows import TaskRows

    rows = TaskRows(["body"])
    one = SimpleNamespace(step="body", task_id="1", started_at=10.0, finished_at=10.3, node="n",
                          worker=1, ok=True, peak_rss=0)
    rows.attempt(one)
    rows.final("body", 0, True)
    for count, durs in ((1, [0.5]), (2, [0.1, 0.2])):   # a batch of one split, then of two
        rows.batch(SimpleNamespace(step="body", count=count, started=11.0, finished=11.5,
                                   node="n", worker=1, peak_rss=0,
                                   duration_array=lambda d=durs: array("f", d)), 2)
    got = rows.per_step()["body"]
    assert got["tasks"] == 4
    assert got["durations"] == pytest.approx([0.1, 0.2, 0.3, 0.5])
