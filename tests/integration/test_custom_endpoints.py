"""Flows whose start and end steps are not named start and end, and flows of one step, on a
real Ray: run, read back, resume, spin, and the CLI's show/check/run."""

from __future__ import annotations

import os

import pytest

from rayflow import Flow, Runner, Task, inspect_spin, metadata, namespace
from rayflow.events import Trigger

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUSTOM = os.path.join(ROOT, "tests", "flows", "custom_endpoints_flow.py")
SINGLE = os.path.join(ROOT, "tests", "flows", "single_step_flow.py")


def _run(ds, flow, run_id):
    namespace(None)
    return Flow(flow, datastore=ds)[run_id]


def test_a_flow_with_custom_endpoints_runs_and_reads_back(run_flow, datastore):
    summary = run_flow(CUSTOM)
    assert summary.status == "success", summary.failures
    run = _run(datastore, "CustomEndpointsFlow", summary.run_id)
    assert run.successful and run.finished and run.finished_at is not None
    assert run.end_task.pathspec.split("/")[2] == "finish" and run.data.result == 15
    assert [s.id for s in run] and {s.id for s in run} == {"begin", "square", "gather",
                                                           "finish"}
    assert run._graph_endpoints == ("begin", "finish")
    params = run["_parameters"].task
    assert (params.metadata_dict["start_step"], params.metadata_dict["end_step"]) == \
        ("begin", "finish")
    info = params["_graph_info"].data
    assert (info["start_step"], info["end_step"]) == ("begin", "finish")
    assert info["graph_structure"] == ["begin", [["square"]], "gather", "finish"]
    assert info["steps"]["begin"]["decorators"][0]["name"] == "card"
    square = run["square"].task  # the newest split
    assert square["_foreach_stack"].data[0][:4] == ("begin", "items", 3, 2)
    assert "_graph_info" in square and "_graph_info" not in [a.id for a in square]
    assert run["begin"].task.data.trigger_seen is None and run.trigger is None
    assert run["gather"].task.data.project_seen == "endpoints"
    trigger = Trigger.from_runs([run])
    assert [e.name for e in trigger] == ["metaflow.CustomEndpointsFlow.finish",
                                         "metaflow.CustomEndpointsFlow.end"]
    assert trigger.run.pathspec == run.pathspec


def test_resume_and_spin_of_a_flow_with_custom_endpoints(datastore, tmp_path):
    marker = tmp_path / "fail"
    marker.write_text("x")
    runner = Runner(CUSTOM, show_output=False, cwd=str(tmp_path), datastore=datastore)
    failed = runner.run(marker=str(marker))
    assert failed.status == "failed" and failed.run.end_task is None
    marker.unlink()
    resumed = runner.resume(origin_run_id=failed.run.id)
    assert resumed.status == "successful" and resumed.run.successful
    run = resumed.run
    assert run.data.result == 15
    assert run["begin"].task.origin_pathspec == f"{failed.run.pathspec}/begin/0"
    assert run["_parameters"].task.metadata_dict["end_step"] == "finish"
    # spin the join, one of its inputs replaced (keyed by that parent's pathspec, as in
    # Metaflow), then the newest split of the foreach
    gather = run["gather"].task
    parent = next(gather.parent_task_pathspecs)
    arts = tmp_path / "arts.py"
    arts.write_text(f"ARTIFACTS = {{{parent.split('/', 1)[1]!r}: {{'sq': 100}}}}\n")
    spin_runner = Runner(CUSTOM, show_output=False, cwd=str(tmp_path), datastore=datastore)
    with spin_runner.spin(gather.pathspec, artifacts_module=str(arts)) as spin:
        replaced = Task(parent, datastore=datastore, _namespace_check=False).data.sq
        assert spin.task.data.total == 14 - replaced + 100
        assert spin.task.data.project_seen == "endpoints"
    with spin_runner.spin(run["square"].task.pathspec) as spin:
        spun = spin.task
        assert spun.data.sq == 9 and "_graph_info" in spun
        assert spun["_foreach_stack"].data[0].index == 2
    with Runner(CUSTOM, show_output=False, cwd=str(tmp_path), datastore=datastore).spin(
            run["begin"].task.pathspec) as spin:
        from rayflow.cards import get_cards

        assert len(get_cards(spin.task)) == 1  # the spun start step's @card
    with pytest.raises(Exception, match="Unknown argument 'marker'"):
        spin_runner.spin(spun.pathspec, marker="x")
    inspect_spin(datastore)
    try:
        assert Task(spun.pathspec, _namespace_check=False).data.sq == 9
    finally:
        metadata(datastore)


def test_a_single_step_flow_through_the_cli(cli, datastore, tmp_path):
    shown = cli("show", SINGLE, check=0)
    assert "Step only" in shown.stdout
    cli("check", SINGLE, check=0)
    cli("run", SINGLE, "--n", "5", check=0, cwd=str(tmp_path))
    namespace(None)
    run = Flow("SingleStepFlow", datastore=datastore).latest_run
    assert run.successful and run.data.x == 10
    assert [s.id for s in run] == ["only"] and run._graph_endpoints == ("only", "only")
    assert list(run["only"].parent_steps) == [] and list(run["only"].child_steps) == []
