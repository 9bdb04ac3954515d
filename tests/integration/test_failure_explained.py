"""A failed run explained where users look: the terminal shows the user's traceback once,
`rayflow status` and the run report lead with the failed task (step, pathspec, exception,
the user's traceback, its last log lines) and the exact resume command; a user who fixes the
flow file and runs that command gets a finished run, without opening a log file. And one
duration for a run everywhere, never negative, a resume that cloned every task included."""

from __future__ import annotations

import html
import json
import os
import shlex

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

FLOW = '''
from rayflow import FlowSpec, step


class FragileFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        print(f"working on item {self.input}")
        if self.input == 2:
            print("about to divide by the broken value")
            self.out = self.input / 0
        self.out = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print(f"total {self.total}")
'''


def _run_printed(cli, command: str, cwd: str):
    """Run a command as printed for the user (`rayflow resume ...`), this checkout's rayflow."""
    words = shlex.split(command)
    assert words[0] == "rayflow"
    return cli(*words[1:], cwd=cwd)


def test_a_failed_run_is_explained_and_resumed_from_what_status_and_report_say(
        cli, tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    flow = work / "fragile.py"
    flow.write_text(FLOW)
    ds = str(tmp_path / "elsewhere")  # not the default datastore: the command must name it
    rid = tmp_path / "rid"
    failed = cli("run", "fragile.py", "--datastore", ds, "--run-id-file", str(rid), cwd=work)
    assert failed.returncode == 1, failed.stderr
    out = failed.stdout + failed.stderr
    # The traceback once: not the worker's copy and the driver's message both.
    assert out.count("Traceback (most recent call last)") == 1, out
    assert out.count("self.out = self.input / 0") == 1, out
    run_id = rid.read_text()

    status = cli("status", f"FragileFlow/{run_id}", "--datastore", ds, cwd=work, check=0)
    text = status.stdout
    pathspec = f"FragileFlow/{run_id}/work/"
    assert "Failed: step work, task " + pathspec in text
    assert "ZeroDivisionError: division by zero" in text
    assert 'fragile.py", line 16, in work' in text and "self.out = self.input / 0" in text
    assert "about to divide by the broken value" in text  # the task's last log lines
    assert "rayflow/runtime" not in text  # rayflow's own frames left out
    (resume_line,) = [ln for ln in text.splitlines() if "resume with: " in ln]
    command = resume_line.split("resume with: ", 1)[1]
    assert command.startswith("rayflow resume fragile.py --origin-run-id " + run_id)
    assert f"--datastore {ds}" in command
    info = json.loads(cli("status", f"FragileFlow/{run_id}", "--datastore", ds, "--json",
                          cwd=work, check=0).stdout)
    assert info["failed_tasks"] == 1 and info["failures"][0]["type"] == "ZeroDivisionError"
    assert info["resume"] == command

    report = open(os.path.join(ds, "FragileFlow", run_id, "_report.html")).read()
    lead = report[:report.index('id="flow-graph"')]  # it comes before the graph
    assert 'id="failures"' in lead and "ZeroDivisionError" in lead
    assert html.escape("self.out = self.input / 0") in lead
    assert "about to divide by the broken value" in lead
    assert html.escape(command) in lead
    assert "<td>Ray</td><td>the cluster at " in report  # RAY_ADDRESS named the session's Ray

    flow.write_text(FLOW.replace("self.out = self.input / 0", "self.out = 0"))
    resumed = _run_printed(cli, command + f" --run-id-file {rid}", str(work))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    new_id = rid.read_text()
    assert cli("status", f"FragileFlow/{new_id}", "--datastore", ds, "--json", cwd=work,
               check=0).stdout.count('"success"') == 1

    # A resume of a finished run clones every task: its duration is small, never negative,
    # and the same in `runs`, `status` and the report.
    again = cli("resume", "fragile.py", "--origin-run-id", new_id, "--datastore", ds,
                "--run-id-file", str(rid), cwd=work, check=0)
    assert "cloned" in again.stderr
    cloned_id = rid.read_text()
    runs = json.loads(cli("runs", "FragileFlow", "--datastore", ds, "--json", cwd=work,
                          check=0).stdout)
    by_id = {r["id"]: r for r in runs}
    assert set(by_id) == {run_id, new_id, cloned_id}
    for r in runs:
        assert r["duration_s"] is not None and r["duration_s"] >= 0, runs
    took = by_id[cloned_id]["duration_s"]
    st = json.loads(cli("status", f"FragileFlow/{cloned_id}", "--datastore", ds, "--json",
                        cwd=work, check=0).stdout)
    assert st["duration_s"] == took
    from rayflow.report.failures import format_duration

    cloned_report = open(os.path.join(ds, "FragileFlow", cloned_id, "_report.html")).read()
    assert f'<span id="run-duration">{format_duration(took)}</span>' in cloned_report
    assert f"finished in {format_duration(took)}" in again.stderr


def test_runs_suggests_the_flow_meant(cli, tmp_path):
    ds = str(tmp_path / "ds")
    cli("run", "tests/flows/single_step_flow.py", "--datastore", ds, check=0)
    out = cli("runs", "SingleStepFlw", "--datastore", ds)
    assert out.returncode == 1 and "Did you mean SingleStepFlow?" in out.stderr
    assert "Traceback" not in out.stderr
