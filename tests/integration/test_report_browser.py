"""The run report and a card in a real browser: Debian's Chromium, headless, loads each page,
takes a screenshot, and its DOM must hold the graph and the timeline, with nothing on the
console. `make test` installs chromium where it is missing (tools/ensure-chromium)."""

import os
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from rayflow.cards import get_cards
from rayflow.client import Run, namespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium here: `make test` installs Debian's chromium with apt-get "
                "(tools/ensure-chromium), and this machine has no package manager for it")


def load(chromium, path, tmp_path, name):
    """(DOM, console lines, screenshot PNG bytes) of the page at `path`."""
    shot = tmp_path / f"{name}.png"
    base = [chromium, *FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,1400"]
    dom = subprocess.run([*base, "--dump-dom", f"file://{path}"], capture_output=True,
                         text=True, timeout=120)
    pic = subprocess.run([*base, f"--screenshot={shot}", f"file://{path}"],
                         capture_output=True, text=True, timeout=120)
    console = [line for line in (dom.stderr + pic.stderr).splitlines() if ":CONSOLE" in line]
    return dom.stdout, console, shot.read_bytes()


def png_is_drawn(data: bytes) -> bool:
    """True when the PNG has more than one colour (a blank page is one)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width = struct.unpack(">I", chunk[:4])[0]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    # Rows start with a filter byte; sample pixels from the filtered data (enough to tell
    # a page with content from an empty one).
    return len(set(raw[1:1 + width * 4 * 50])) > 8 or len(set(raw[::997])) > 8


def check_report(chromium, path, tmp_path, name, steps):
    dom, console, png = load(chromium, path, tmp_path, name)
    assert 'id="flow-graph"' in dom and 'id="timeline"' in dom and 'id="step-table"' in dom
    for step in steps:
        assert f'data-step="{step}"' in dom
    assert console == [], console
    assert png_is_drawn(png)
    assert len(png) > 20_000


def test_console_errors_are_seen(chromium, tmp_path):
    """The check can fail: a page that logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>console.error('boom'); nope();</script>"
                   "</body></html>")
    _, console, _ = load(chromium, str(bad), tmp_path, "bad")
    assert any("boom" in line for line in console) and any("nope" in line for line in console)


def test_foreach_report_and_card_render(chromium, run_flow, datastore, tmp_path):
    namespace(None)
    s = run_flow(os.path.join(ROOT, "examples", "foreach.py"), {"regions": 3, "shards": 5})
    assert s.successful and s.report
    check_report(chromium, s.report, tmp_path, "foreach",
                 ["start", "region", "shard", "join_shards", "join_regions", "end"])
    cards = run_flow("cards_flow.py", {"width": 3})
    assert cards.successful
    (card,) = get_cards(Run(cards.pathspec, datastore=datastore)["start"].task)
    page = tmp_path / "card.html"
    page.write_text(card.get())
    dom, console, png = load(chromium, str(page), tmp_path, "card")
    assert "<h1>Start</h1>" in dom and "<svg" in dom and "<table" in dom
    assert console == [], console
    assert png_is_drawn(png)


def test_identity_resolution_report_renders(chromium, run_flow, datastore, tmp_path):
    out = tmp_path / "records"
    subprocess.run([sys.executable, "-m", "examples.identity_resolution.generate",
                    "--records", "3000", "--seed", "3", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    s = run_flow(os.path.join(ROOT, "examples", "identity_resolution", "flow.py"),
                 {"data": str(out), "partitions": 4,
                  "output": str(tmp_path / "out")})
    assert s.successful, s.failures
    check_report(chromium, s.report, tmp_path, "identity",
                 ["start", "prepare", "gather", "split_compare", "compare", "train",
                  "split_score", "score", "cluster", "end"])
    namespace(None)
    (card,) = get_cards(Run(s.pathspec, datastore=datastore)["end"].task, id="results")
    html = card.get()
    assert "Learned weights" in html and "Candidate pairs by match weight" in html
    assert "The closest call, field by field" in html


def png_pixels(data: bytes) -> tuple[int, int, list[bytearray]]:
    """(width, height, rows of RGBA bytes) of an 8-bit RGBA or RGB PNG, unfiltered."""
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], None
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        up = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = up[i], (up[i - channels] if i >= channels else 0)
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, [bytearray(r) if channels == 4 else bytearray(
        b for k in range(0, len(r), 3) for b in (*r[k:k + 3], 255)) for r in rows]


def test_failed_run_report_shows_the_failure_first(chromium, run_flow, tmp_path):
    """A failed run's report, as a browser draws it: the first screen (1280 x 520) holds the
    failed task's exception in its red box, and the page holds the traceback and the
    resume command, nothing on the console."""
    s = run_flow("failing_flow.py")
    assert not s.successful and s.report
    dom, console, _ = load(chromium, s.report, tmp_path, "failed")
    assert console == [], console
    lead = dom[:dom.index('id="flow-graph"')]
    assert 'id="failures"' in lead and "RuntimeError" in lead and "split three is broken" in lead
    assert 'id="resume-command"' in lead and "--origin-run-id " + s.run_id in lead
    assert 'data-step="work" data-status="failed"' in dom
    shot = tmp_path / "first-screen.png"
    subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile-first'}",
                    "--window-size=1280,520", f"--screenshot={shot}", f"file://{s.report}"],
                   capture_output=True, timeout=120, check=True)
    width, height, rows = png_pixels(shot.read_bytes())
    colours = {}
    for row in rows:
        for x in range(0, width * 4, 4):
            key = bytes(row[x:x + 3])
            colours[key] = colours.get(key, 0) + 1
    error_bg, bad = bytes.fromhex("fdf0f0"), bytes.fromhex("d64545")
    assert colours.get(error_bg, 0) > 20_000, "the failure box is not on the first screen"
    assert colours.get(bad, 0) > 300, "the failure box's red edge is not on the first screen"
