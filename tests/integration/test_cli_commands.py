"""Every command a local Metaflow user has, through `rayflow COMMAND` and `python flow.py
COMMAND` (flow-level options before or after the command), @project runs, and usage errors.
Runs here use the inline executor: what is tested is the command line, not Ray."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from rayflow import Flow, Run, namespace

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROJECT_FLOW = '''
from rayflow import FlowSpec, current, project, step


@project(name="shop")
class ShopFlow(FlowSpec):
    @step
    def start(self):
        self.seen = [current.project_name, current.branch_name, current.project_flow_name,
                     current.is_production, current.is_user_branch]
        print("branch", current.branch_name)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ShopFlow()
'''


def _env():
    return {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "METAFLOW_BRANCH",
                         "METAFLOW_PRODUCTION")}


def rayflow(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rayflow_cli.main", *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=120)


def python_flow(file, *args, cwd):
    return subprocess.run([sys.executable, file, *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["run"], "Missing argument 'FILE'"),
    (["nope"], "No such command 'nope'"),
    (["run", "examples/hello.py", "--max-workers", "abc"], "Invalid value for '--max-workers'"),
    (["status"], "Missing argument"),
])
def test_usage_errors_print_the_usage_and_exit_2(args, needle):
    proc = rayflow(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Usage: rayflow" in proc.stderr
    assert needle in proc.stderr


def test_help_lists_every_command():
    out = rayflow("--help").stdout
    for command in ("run", "resume", "show", "check", "logs", "dump", "runs", "tag", "status",
                    "output-dot", "spin"):
        assert f"  {command} " in out, command


def test_output_dot_draws_foreach_and_switch_edges():
    out = rayflow("output-dot", "examples/foreach.py").stdout
    assert out.startswith('digraph "ForeachFlow" {') and out.rstrip().endswith("}")
    assert '"start" -> "region" [style="dashed", label="foreach region_names"];' in out
    switch = rayflow("output-dot", "tests/flows/switch_flow.py").stdout
    assert "label=" in switch and "->" in switch


def test_python_flow_py_has_every_command_with_options_before_or_after(tmp_path):
    flow = tmp_path / "hello.py"
    shutil.copy(os.path.join(ROOT, "examples", "hello.py"), flow)
    ds = str(tmp_path / "ds")
    ran = python_flow(str(flow), "--datastore", ds, "--quiet", "--with", "retry", "run",
                      "--executor", "inline", "--tag", "t1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    namespace(None)
    run = Flow("HelloFlow", datastore=ds).latest_run
    assert run.successful and "t1" in run.tags
    # The same options after the command.
    again = python_flow(str(flow), "run", "--executor", "inline", "--datastore", ds, cwd=tmp_path)
    assert again.returncode == 0, again.stderr

    status = python_flow(str(flow), "--datastore", ds, "status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["status"] == "success"
    assert [(s["step"], s["done"]) for s in info["steps"]] == \
        [("start", 1), ("hello", 1), ("end", 1)]

    rid = info["pathspec"].split("/")[1]
    logs = python_flow(str(flow), "--datastore", ds, "logs", f"{rid}/hello/1", cwd=tmp_path)
    assert logs.returncode == 0 and "Hello, world!" in logs.stdout, logs.stderr
    dump = python_flow(str(flow), "dump", f"{rid}/hello/1", "--datastore", ds, cwd=tmp_path)
    assert dump.returncode == 0 and "greeting" in dump.stdout, dump.stderr
    tag = python_flow(str(flow), "--datastore", ds, "tag", "add", "--run-id", rid, "mine",
                      cwd=tmp_path)
    assert tag.returncode == 0 and "mine" in tag.stdout.split(), tag.stderr
    assert "mine" in Run(f"HelloFlow/{rid}", datastore=ds).tags
    runs = python_flow(str(flow), "--datastore", ds, "runs", "--all", cwd=tmp_path)
    assert runs.returncode == 0 and rid in runs.stdout, runs.stderr
    for command in ("show", "check", "output-dot"):
        proc = python_flow(str(flow), command, cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stderr)
    bad = python_flow(str(flow), "bogus", cwd=tmp_path)
    assert bad.returncode == 2 and "Unknown command 'bogus'" in bad.stderr


def test_project_branches_current_and_tags(tmp_path):
    flow = tmp_path / "shop.py"
    flow.write_text(PROJECT_FLOW)
    ds = str(tmp_path / "ds")
    user = python_flow(str(flow), "--datastore", ds, "run", "--executor", "inline",
                       cwd=tmp_path)
    assert user.returncode == 0, user.stderr
    assert "Project: shop, Branch: user." in user.stderr
    test = python_flow(str(flow), "--branch", "blue", "run", "--executor", "inline",
                       "--datastore", ds, cwd=tmp_path)
    assert test.returncode == 0, test.stderr
    prod = python_flow(str(flow), "run", "--production", "--executor", "inline",
                       "--datastore", ds, cwd=tmp_path)
    assert prod.returncode == 0, prod.stderr
    namespace(None)
    runs = list(Flow("ShopFlow", datastore=ds))
    by_branch = {r["start"].task.data.seen[1]: r for r in runs}
    assert set(by_branch) == {next(b for b in by_branch if b.startswith("user.")),
                              "test.blue", "prod"}
    prod_run = by_branch["prod"]
    assert prod_run["start"].task.data.seen == ["shop", "prod", "shop.prod.ShopFlow", True,
                                                 False]
    assert {"project:shop", "project_branch:prod"} <= prod_run.tags
    namespace("project_branch:test.blue")
    assert [r.id for r in Flow("ShopFlow", datastore=ds)] == [by_branch["test.blue"].id]
    bad = python_flow(str(flow), "run", "--branch", "Not-Valid", "--executor", "inline",
                      "--datastore", ds, cwd=tmp_path)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "branch name 'Not-Valid'" in bad.stderr


def test_task_output_has_one_prefix_and_no_colour_codes(cli):
    proc = cli("run", os.path.join(ROOT, "examples", "hello.py"), check=0)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "Hello, world!" in ln]
    run_id = proc.stderr.split("Done: HelloFlow/")[1].split()[0]
    assert sorted(ln.split("] ")[0] for ln in lines) == [f"[{run_id}/end/2",
                                                         f"[{run_id}/hello/1"], lines
    assert all(ln.startswith("[") for ln in lines), lines
    assert "\x1b[" not in proc.stdout + proc.stderr and "pid=" not in proc.stdout
