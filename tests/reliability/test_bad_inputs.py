"""Bad inputs and odd histories are one message, or a right answer, never a traceback: a flow
file with a syntax error, credentials in a datastore URL, a NUL byte in a pathspec, a very long
flow name, a huge tag, a card link to javascript:, the duration of a resume that cloned all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rayflow import default_namespace, namespace
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.resume import ResumeRequest
from rayflow.runtime.run_loop import RunLoop, RunOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELLO = os.path.join(ROOT, "examples", "hello.py")

SMALL_FLOW = '''
from rayflow import FlowSpec, step


class SmallFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.end)

    @step
    def end(self):
        pass
'''


@pytest.fixture(autouse=True)
def any_namespace():
    namespace(None)
    yield
    default_namespace()


def rayflow(*args, cwd, **extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE")}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def one_message(proc) -> str:
    """The last line of stderr, after checking the command failed with no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def inline_run(path: str, ds: str, resume=None):
    loaded = load_flow(path)
    params = None if resume else resolve_parameters(loaded.cls, {})
    opts = RunOptions(datastore_url=ds, executor="inline", progress=False, resume=resume)
    return RunLoop(loaded, params, opts).run()


def test_a_resume_that_cloned_every_task_has_a_duration_that_is_not_negative(tmp_path):
    flow = tmp_path / "small_flow.py"
    flow.write_text(SMALL_FLOW)
    ds = str(tmp_path / "ds")
    first = inline_run(str(flow), ds)
    time.sleep(1.5)  # the resume starts well after the origin's `end` finished
    second = inline_run(str(flow), ds, ResumeRequest(origin_run_id=first.run_id))
    assert second.tasks_cloned == 2

    def durations():
        proc = rayflow("runs", "SmallFlow", "--datastore", ds, "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return {r["id"]: r["duration_s"] for r in json.loads(proc.stdout)}

    seen = durations()
    assert seen[second.run_id] is not None and 0 <= seen[second.run_id] < 60, seen
    # Its run record deleted and made again by hand, without an end time.
    record = os.path.join(ds, "SmallFlow", second.run_id, "_run.json")
    with open(record) as fh:
        data = json.load(fh)
    os.remove(record)
    data.update(finished_at=None, status="running")
    with open(record, "w") as fh:
        json.dump(data, fh)
    seen = durations()
    assert seen[second.run_id] is not None and seen[second.run_id] >= 0, seen


@pytest.mark.parametrize("broken", ["the flow file", "a module it imports"])
def test_a_syntax_error_is_one_message_naming_file_and_line(tmp_path, broken):
    flow = tmp_path / "broken_flow.py"
    bad = "    def start(self)\n        self.next(self.end)\n"  # no colon, line 7
    source = SMALL_FLOW.replace("    def start(self):\n        self.x = 1\n"
                                "        self.next(self.end)\n", bad)
    if broken == "a module it imports":
        (tmp_path / "helpers.py").write_text("x = 1\ndef f(:\n    pass\n")
        source, where = "import helpers\n" + SMALL_FLOW, "helpers.py:2 (imported by"
    else:
        where = "broken_flow.py:7: SyntaxError"
    flow.write_text(source)
    for command in (["run", str(flow), "--datastore", str(tmp_path / "ds")],
                    ["check", str(flow)], ["show", str(flow)]):
        proc = rayflow(*command, cwd=tmp_path)
        last = one_message(proc)
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # "Running ..." first
        assert last.startswith("Invalid flow: ") and where in last, last


@pytest.mark.parametrize("where", ["--datastore", "RAYFLOW_DATASTORE"])
def test_credentials_in_a_datastore_url_are_refused_and_never_echoed(tmp_path, where):
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"
    url = f"s3://AKIAEXAMPLEKEY:{secret}@bucket/x"
    if where == "--datastore":
        proc = rayflow("run", HELLO, "--datastore", url, cwd=tmp_path)
    else:
        proc = rayflow("run", HELLO, cwd=tmp_path, RAYFLOW_DATASTORE=url)
    last = one_message(proc)
    assert secret not in proc.stderr + proc.stdout and "AKIAEXAMPLEKEY" not in proc.stderr
    assert last.startswith("Datastore error: The datastore URL s3://***@bucket/x carries "
                           "credentials"), last
    assert "Pass s3://bucket/x" in last


CARD_FLOW = '''
from rayflow import FlowSpec, card, current, step
from rayflow.cards import Image, Markdown


class CardLinkFlow(FlowSpec):
    @card(type="blank")
    @step
    def start(self):
        current.card.append(Markdown(
            "[click](javascript:alert(1)) [tab](java\\tscript:alert(2)) "
            "[ok](https://example.com/a?b=1) ![img](data:text/html,<b>x</b>) [rel](other.html)"))
        current.card.append(Image(src="javascript:alert(3)", label="bad"))
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def test_a_card_links_only_to_safe_schemes_and_forbids_scripts(tmp_path):
    import re

    from rayflow import Run
    from rayflow.cards import get_cards

    flow = tmp_path / "card_link_flow.py"
    flow.write_text(CARD_FLOW)
    ds = str(tmp_path / "ds")
    summary = inline_run(str(flow), ds)
    assert summary.successful, summary.failures
    task = Run(summary.pathspec, datastore=ds)["start"].task
    (card,) = list(get_cards(task))
    page = card.get()
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert "https://example.com/a?b=1" in hrefs and "other.html" in hrefs, hrefs
    assert not [h for h in hrefs if "script" in h.lower() or h.startswith("data:text")], hrefs
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)
    report = os.path.join(ds, "CardLinkFlow", summary.run_id, "_report.html")
    with open(report) as fh:
        assert "Content-Security-Policy" in fh.read()


def test_a_nul_byte_in_a_pathspec_is_one_error(tmp_path):
    from rayflow import Run
    from rayflow.exceptions import RayflowException

    flow = tmp_path / "small_flow.py"
    flow.write_text(SMALL_FLOW)
    ds = str(tmp_path / "ds")
    summary = inline_run(str(flow), ds)
    for pathspec in (f"SmallFlow/{summary.run_id}\x00", f"Small\x00Flow/{summary.run_id}"):
        with pytest.raises(RayflowException, match="contains a NUL byte"):
            Run(pathspec, datastore=ds)
    with pytest.raises(RayflowException, match=r"has no step 'st.art'"):
        _ = Run(summary.pathspec, datastore=ds)["st\x00art"]


def test_a_flow_name_too_long_for_a_folder_is_one_message_before_ray_starts(tmp_path):
    import tempfile

    name = "Long" * 70 + "Flow"  # 284 bytes: no file system takes it as a folder's name
    flow = tmp_path / "long_flow.py"
    flow.write_text(SMALL_FLOW.replace("SmallFlow", name))
    ray_tmp = tempfile.mkdtemp(prefix="rf-")
    try:
        proc = rayflow("run", str(flow), "--datastore", str(tmp_path / "ds"), cwd=tmp_path,
                       RAY_TMPDIR=ray_tmp)
        assert not os.listdir(ray_tmp), "Ray was started before the name was checked"
    finally:
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
    last = one_message(proc)
    assert last.startswith("Datastore error: Flow name 'LongLong") and "284 bytes" in last


def test_a_tag_too_long_is_one_message_when_running_and_when_tagging(tmp_path):
    flow = tmp_path / "small_flow.py"
    flow.write_text(SMALL_FLOW)
    ds = str(tmp_path / "ds")
    huge = "t" * 5000
    proc = rayflow("run", str(flow), "--datastore", ds, "--tag", huge, "--executor", "inline",
                   cwd=tmp_path)
    last = one_message(proc)
    assert last.startswith("Tagging error: Cannot tag the run with 'ttt") and \
        "(5000 bytes)" in last and huge not in proc.stderr
    summary = inline_run(str(flow), ds)
    proc = rayflow("tag", "add", summary.pathspec, huge, "--datastore", ds, cwd=tmp_path)
    last = one_message(proc)
    assert last.startswith("Tagging error: Cannot add tag 'ttt") and "at most 500 bytes" in last
