"""Public Metaflow flows on Ray, through the CLI and the Runner (see the unit tests of the same
name for the rules one by one): parameter artifacts named after their attribute, repeated
options, `--with kubernetes`, @catch's variable, and a failed task's artifacts."""

from __future__ import annotations

import os

import pytest

from rayflow import Flow, Runner

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY = os.path.join(ROOT, "tests", "flows", "parity_flow.py")


def latest(datastore):
    return Flow("ParityFlow", datastore=datastore).latest_run


def test_cli_run_as_metaflow_names_and_sizes_it(cli, datastore):
    cli("run", PARITY, "--with", "kubernetes:cpu=2,memory=64,image=python:3.11",
        "--with", 'environment:vars={"PARITY_A": "1", "PARITY_B": "2"}',
        "--creature", "cat", "--num", "3", "--num=4", check=0)
    run = latest(datastore)
    start = run["start"].task
    assert start.data.seen == ("cat", (3, 4)) and run.data.total == 7
    assert run.data.animal == "cat" and "creature" not in start
    assert start.data.cpus == 2.0 and start.data.env_a == "1"
    assert start.data.start_error is None  # @catch's variable, on success


def test_a_failed_task_on_ray_keeps_its_artifacts(cli, datastore):
    proc = cli("run", PARITY, "--fail-at-work", "true")
    assert proc.returncode == 1
    work = latest(datastore)["work"].task
    assert not work.successful and not work.finished
    assert work.data.progress == "half way" and work["seen"].data == ("dog", ())
    assert "work was told to fail" in str(work.exception)


def test_runner_gives_a_list_to_a_multiple_parameter(datastore):
    with Runner(PARITY, show_output=False, datastore=datastore,
                executor="inline").run(num=[5, 6], creature="owl") as running:
        assert running.status == "successful", running.stderr
        assert running.run.data.total == 11 and running.run.data.animal == "owl"
