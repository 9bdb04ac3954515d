"""Configs in a real run (on Ray, where workers build the decorators that read them), resume
reusing the origin's configs, and spin (CLI and Runner.spin)."""

from __future__ import annotations

import json
import os

import pytest

from rayflow import Flow, Runner, Task, namespace

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_FLOW = os.path.join(ROOT, "tests", "flows", "config_flow.py")
FOREACH = os.path.join(ROOT, "examples", "foreach.py")


def _latest(ds, flow):
    namespace(None)
    return Flow(flow, datastore=ds).latest_run


def test_configs_reach_decorators_parameters_and_artifacts_on_ray(cli, datastore, tmp_path):
    proc = cli("run", CONFIG_FLOW, "--config-value", "settings", json.dumps(
        {"base": 5, "project": "cfg_test", "greeting": "hello", "cpus": 1, "retries": 1}),
        cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run = _latest(datastore, "ConfigFlow")
    end = run["end"].task.data
    assert (end.greeting, end.twice, end.project, end.total, end.colour) == \
        ("hello", "10", "cfg_test", 11, "none")  # no extra.txt: that config is None
    assert run["start"].task.data.seen_env == "yes"
    assert run.data.settings.greeting == "hello" and run.data.settings == {
        "base": 5, "project": "cfg_test", "greeting": "hello", "cpus": 1, "retries": 1}
    assert {"project:cfg_test", "project_branch:user." + run.user} <= run.tags
    task_obj = run["start"].task.data.task_obj
    assert task_obj.pathspec == run["start"].task.pathspec
    assert run.data.extra is None


def test_a_config_file_and_resume_reusing_the_origins_configs(datastore, tmp_path):
    (tmp_path / "extra.txt").write_text("colour=green\n")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"base": 1, "project": "cfg_test", "greeting": "yo",
                                    "cpus": 1, "retries": 0}))
    runner = Runner(CONFIG_FLOW, show_output=False, cwd=str(tmp_path), datastore=datastore,
                    executor="inline")
    env = {"METAFLOW_FLOW_CONFIG": json.dumps({"settings": str(settings)})}
    failed = Runner(CONFIG_FLOW, show_output=False, cwd=str(tmp_path), env=env,
                    datastore=datastore, executor="inline").run(fail=True)
    assert failed.status == "failed"
    assert failed.run["end"].task.current_attempt == 0  # retries=0 came from the file
    resumed = runner.resume(origin_run_id=failed.run.id)
    assert resumed.status == "failed"   # the origin's fail=True is reused, as its configs
    data = failed.run["start"].task.data
    assert data.settings.greeting == "yo" and data.extra == {"colour": "green"}
    assert resumed.run["start"].task.origin_pathspec == f"{failed.run.pathspec}/start/0"
    assert resumed.run["start"].task.data.settings == data.settings
    runner.cleanup()


def test_spin_reruns_one_task_from_its_inputs_without_touching_its_run(cli, datastore,
                                                                       tmp_path, task_at):
    cli("run", FOREACH, "--regions", "2", "--shards", "2", "--executor", "inline", check=0)
    origin = _latest(datastore, "ForeachFlow")
    task = task_at(origin, "shard", 1, 0)
    spun = cli("spin", FOREACH, f"{origin.id}/shard/{task.id}", check=0)
    assert "Spun ForeachFlow/" in spun.stderr
    spin_ds = os.path.join(datastore, "_spin")
    namespace(None)
    [spin_run] = list(Flow("ForeachFlow", datastore=spin_ds))
    again = spin_run["shard"][task.id]
    assert {a.id: a.data for a in again} == {a.id: a.data for a in task}
    assert {"spin", f"spin_of:{task.pathspec}"} <= spin_run.tags
    assert _latest(datastore, "ForeachFlow").id == origin.id  # the run list is untouched

    override = tmp_path / "over.py"
    override.write_text("ARTIFACTS = {'region_name': 'region-9'}\n")
    with Runner(FOREACH, show_output=False, datastore=datastore, executor="inline") as r:
        executing = r.spin(f"{origin.id}/shard/{task.id}", artifacts_module=str(override))
        assert executing.status == "successful", executing.stderr
        assert executing.task.data.region_name == "region-9"
        assert Task(executing.task.pathspec, datastore=spin_ds).data.value == \
            task.data.value
    bad = cli("spin", FOREACH, "shard")
    assert bad.returncode == 1 and "has 4 tasks" in bad.stderr
