"""Mutators and user step decorators on a real Ray: every worker re-imports the flow file and
must prepare the same decorators and parameters as the driver did, for the run's configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rayflow import Flow, Run, namespace

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "tests", "flows", "mutators_flow.py")


def _latest(ds, flow):
    namespace(None)
    return Flow(flow, datastore=ds).latest_run


def test_workers_see_what_the_mutators_made_for_the_runs_configs(cli, datastore, tmp_path):
    proc = cli("run", FLOW, "--config-value", "settings",
               json.dumps({"width": 4, "label": "on-ray"}), "--width", "6",
               "--with", "retry:times=1", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run = _latest(datastore, "MutatorsFlow")
    start = run["start"].task.data
    assert start.width == 6                       # a mutator's parameter, from the command line
    assert (start.env_start, start.more) == ("start", "from_string")
    assert start.stamp == "on-ray"                # a StepMutator's decorator, from the config
    assert run["join"].task.data.values == [-1, -1, -1, 0, 20, 40]
    assert run["swapped"].task.data.replaced_ran is True
    assert run["end"].task.data.swallowed == "ValueError"


def test_python_flow_py_run_and_resume_keep_the_mutators_parameters(cli_env, datastore,
                                                                    tmp_path):
    """`python flow.py` defines the classes twice (as __main__, then as the flow's module):
    a mutator added by name is the flow module's. Resume reads back a mutator's parameter."""
    flow = tmp_path / "resumed_flow.py"
    flow.write_text(textwrap.dedent("""
        import os
        from rayflow import FlowMutator, FlowSpec, Parameter, step

        class adds_n(FlowMutator):
            def pre_mutate(self, mutable_flow):
                mutable_flow.add_parameter("n", Parameter("n", default=1))
                mutable_flow.add_decorator("marks")

        class marks(FlowMutator):
            def mutate(self, mutable_flow):
                for _, s in mutable_flow.steps:
                    s.add_decorator("environment:vars={\\"MARK\\": \\"m\\"}")

        @adds_n
        class ResumedFlow(FlowSpec):
            @step
            def start(self):
                self.seen = self.n
                self.next(self.end)

            @step
            def end(self):
                if os.path.exists(os.path.join(os.path.dirname(__file__), "fail")):
                    raise RuntimeError("told to fail")
                self.final = (self.n, os.environ.get("MARK"))

        if __name__ == "__main__":
            ResumedFlow()
    """))
    (tmp_path / "fail").write_text("")
    env = cli_env(datastore)
    first = subprocess.run([sys.executable, str(flow), "run", "--n", "9"], env=env,
                           cwd=str(tmp_path), capture_output=True, text=True, timeout=180)
    assert first.returncode == 1 and "told to fail" in first.stderr, first.stderr
    os.remove(tmp_path / "fail")
    resumed = subprocess.run([sys.executable, str(flow), "resume"], env=env,
                             cwd=str(tmp_path), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    run = _latest(datastore, "ResumedFlow")
    assert run.successful and run.data.final == (9, "m")
    assert Run(run.pathspec, datastore=datastore)["start"].task.origin_pathspec
