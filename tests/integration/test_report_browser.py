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
