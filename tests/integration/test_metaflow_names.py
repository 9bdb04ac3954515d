"""Metaflow names a flow's import line uses that rayflow had lacked: @exit_hook (run by the
driver), profile, metaflow_config, includefile, and the refusals of what rayflow does not
support yet (Deployer, unbounded foreach), each one message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration]


def test_exit_hooks_after_success(run_flow, tmp_path, monkeypatch, capsys):
    out = tmp_path / "hooks.txt"
    monkeypatch.setenv("EXIT_HOOK_OUT", str(out))
    s = run_flow("exit_hook_flow.py")
    assert s.successful, s.failures
    # The hooks of both decorators, in order; the broken one says so and the rest still run.
    assert out.read_text().splitlines() == [
        f"ok {s.pathspec} finished=True successful=True x=42", "no_args"]
    assert "[exit_hook] Hook 'broken' failed with error: RuntimeError: hook blew up" in \
        capsys.readouterr().out


def test_exit_hooks_after_failure(run_flow, tmp_path, monkeypatch):
    out = tmp_path / "hooks.txt"
    monkeypatch.setenv("EXIT_HOOK_OUT", str(out))
    s = run_flow("exit_hook_flow.py", {"fail": True})
    assert not s.successful
    assert out.read_text().splitlines() == ["no_args", f"fail {s.pathspec} successful=False"]


def test_exit_hook_without_hooks_is_refused():
    from rayflow import FlowSpec, exit_hook
    from rayflow.exceptions import InvalidFlowError
    from rayflow.exit_hook import exit_hooks_of

    @exit_hook
    class Bare(FlowSpec):
        pass

    with pytest.raises(InvalidFlowError, match="names no hook"):
        exit_hooks_of(Bare)


def test_unbounded_foreach_is_refused(run_flow):
    s = run_flow("unbounded_foreach_flow.py")
    assert not s.successful
    assert "unbounded foreach is a Metaflow feature rayflow does not support yet" in \
        str(s.failures[0].error)


def test_parallel_step_without_num_parallel_is_one_message_at_flow_load(tmp_path):
    flow = tmp_path / "par.py"
    flow.write_text(
        "from rayflow import FlowSpec, step, parallel\n\n"
        "class ParFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.train)\n\n"
        "    @parallel\n    @step\n    def train(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n"
        "if __name__ == '__main__':\n    ParFlow()\n")
    proc = subprocess.run([sys.executable, str(flow), "run"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode != 0
    assert f"{flow}:10: Step *train* has a @parallel decorator, but is not called with " \
        "self.next(num_parallel=...)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_deployers_and_events_refuse_when_called():
    from rayflow import DeployedFlow, Deployer, NBDeployer
    from rayflow.integrations import ArgoEvent
    from rayflow.unsupported import UnsupportedFeature

    for cls in (Deployer, NBDeployer, DeployedFlow, ArgoEvent):
        with pytest.raises(UnsupportedFeature, match="does not support it yet.*Runner"):
            cls("flow.py")


def test_profile_prints_and_counts(capsys):
    from rayflow import profile

    with profile("load"):
        pass
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "PROFILE: load starting"
    assert lines[1].startswith("PROFILE: load completed in ") and lines[1].endswith("ms")
    stats = {}
    with profile("a", stats_dict=stats):
        pass
    with profile("a", stats_dict=stats):
        pass
    assert list(stats) == ["a"] and isinstance(stats["a"], int)
    assert capsys.readouterr().out == ""


def _config_in_subprocess(env: dict, names: str) -> str:
    code = f"from rayflow.metaflow_config import {names}; print({names})"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("METAFLOW_", "RAYFLOW_DATASTORE"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, check=True, timeout=60).stdout.strip()


def test_metaflow_config_follows_the_datastore(tmp_path):
    names = "DEFAULT_DATASTORE, DATASTORE_SYSROOT_S3, DATATOOLS_S3ROOT, DATASTORE_SYSROOT_LOCAL"
    s3 = _config_in_subprocess({"RAYFLOW_DATASTORE": "s3://bkt/pre"}, names)
    assert s3 == "s3 s3://bkt/pre s3://bkt/pre/data None"
    local = _config_in_subprocess({"RAYFLOW_DATASTORE": str(tmp_path)}, names)
    assert local == f"local None None {tmp_path}"
    # METAFLOW_* variables win, as in Metaflow.
    env = {"RAYFLOW_DATASTORE": str(tmp_path), "METAFLOW_DATATOOLS_S3ROOT": "s3://o/data"}
    assert _config_in_subprocess(env, "DATATOOLS_S3ROOT") == "s3://o/data"


def test_includefile_module_path():
    from rayflow import IncludeFile
    from rayflow.includefile import IncludeFile as FromModule

    assert FromModule is IncludeFile


def test_rich_card_components_render_in_a_task_card(run_flow, datastore):
    from rayflow import Run
    from rayflow.cards import get_cards

    s = run_flow("rich_cards_flow.py")
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore, _namespace_check=False)
    (c,) = get_cards(run["start"].task)
    html = c.get()
    assert 'class="valuebox success"' in html and "1,234,567" in html
    assert "Up 3% from yesterday" in html
    assert "3 events, showing 2" in html and "api-2" in html and "api-0" not in html
    assert "&quot;i&quot;: 2" in html
    assert "<h2>Config</h2>" in html and "lr: 0.1" in html


def test_parallel_map_and_profile_in_a_step(run_flow, datastore):
    from rayflow import Run

    s = run_flow("multicore_flow.py")
    assert s.successful, s.failures
    task = Run(s.pathspec, datastore=datastore, _namespace_check=False)["start"].task
    assert task.data.squares == [100 + x * x for x in range(10)]
    assert list(task.data.timings) == ["squares"]
    assert "PROFILE: printed starting" in task.stdout
    assert "PROFILE: printed completed in" in task.stdout
