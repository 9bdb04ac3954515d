"""Metaflow's run options, commands and @catch semantics through `python flow.py ...`, as a
Metaflow user types them. Runs use the inline executor (the command line is what is tested),
except the @resources one, which needs the embedded Ray that rayflow starts itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rayflow import Flow

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

FLOW = '''
from rayflow import FlowSpec, Flow, Parameter, catch, current, resources, step


class OptsFlow(FlowSpec):
    n = Parameter("n", default=4, type=int)
    fail = Parameter("fail", default=False, type=bool)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.big = "b" * 5000
        for i in range(50):
            print("line", i, "x" * 40)
        self.next(self.work, foreach="items")

    @resources(cpu=64, memory=10_000_000, gpu=1)
    @step
    def work(self):
        self.v = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.seen_ns = current.namespace
        self.structure = current.graph["graph_structure"]
        self.tmp = current.tempdir
        self.next(self.risky)

    @catch(var="err")
    @step
    def risky(self):
        if self.fail:
            raise ValueError("risky went wrong")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OptsFlow()
'''

CATCH_ON_FOREACH = '''
from rayflow import FlowSpec, catch, step


class BadCatchFlow(FlowSpec):
    @catch(var="err")
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BadCatchFlow()
'''


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYFLOW_DATASTORE", "METAFLOW_BRANCH")}
    return {**env, **extra}


def python_flow(path, *args, cwd, **env):
    return subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "opts.py"
    path.write_text(FLOW)
    return path


def test_datastore_root_namespace_and_max_log_size(flow_file, tmp_path):
    root = tmp_path / "elsewhere"
    proc = python_flow(flow_file, "--datastore", "local", "--datastore-root", str(root), "run",
                       "--executor", "inline", "--namespace", "team:x", "--max-log-size",
                       "0.001", "--max-workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / ".rayflow").exists()  # Metaflow's --datastore-root is the root
    run = Flow("OptsFlow", datastore=str(root)).latest_run
    assert run.successful and run["join"].task.data.seen_ns == "team:x"
    log = run["start"].task.stdout
    assert log.rstrip().endswith("[TRUNCATED - MAXIMUM LOG FILE SIZE REACHED]")
    assert len(log) < 0.001 * 2**20 + 100 and "line 0 " in log
    # The whole log still reached the console.
    assert "line 49 " in proc.stdout + proc.stderr


def test_client_attributes_and_system_tags_as_metaflow(flow_file, tmp_path):
    import platform

    import rayflow

    proc = python_flow(flow_file, "run", "--executor", "inline", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run
    assert run.data.name == "OptsFlow" and run["work"].task["name"].data == "OptsFlow"
    assert f"python_version:{platform.python_version()}" in run.system_tags
    assert f"rayflow_version:{rayflow.__version__}" in run.system_tags
    assert run.code is None and run.trigger is None
    step = run["join"]
    assert list(step.control_tasks()) == [] and step.control_task is None
    assert step.environment_info is None
    task = step.task
    assert task.code is None and task.environment_info is None
    assert task.runtime_name == "rayflow"
    assert task.data.structure == ["start", [["work"]], "join", "risky", "end"]
    assert task.data.tmp == "."
    dump = python_flow(flow_file, "dump", f"{run.id}/join/{task.id}", cwd=tmp_path)
    assert any(line.split()[:1] == ["name"] for line in dump.stdout.splitlines())


def test_logs_prints_plain_lines_as_metaflow(flow_file, tmp_path):
    proc = python_flow(flow_file, "run", "--executor", "inline", "--n", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run
    logs = python_flow(flow_file, "logs", f"{run.id}/start", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines[0] == "line 0 " + "x" * 40 and len(lines) == 50  # no [step/task] prefix
    assert f"Dumping logs of run_id={run.id} step=start task_id=0" in logs.stderr
    only_err = python_flow(flow_file, "logs", f"{run.id}/start/0", "--stderr", cwd=tmp_path)
    assert only_err.stdout == "" and "stderr" in only_err.stderr


def test_max_num_splits_fails_the_foreach_step_as_metaflow_does(flow_file, tmp_path):
    ok = python_flow(flow_file, "run", "--executor", "inline", "--max-num-splits", "4",
                     cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    over = python_flow(flow_file, "run", "--executor", "inline", "--max-num-splits", "3",
                       cwd=tmp_path)
    assert over.returncode == 1 and "Traceback" not in over.stderr
    assert "Foreach in step 'start' yielded 4 child steps" in over.stderr
    assert "maximum of 3" in over.stderr and "--max-num-splits" in over.stderr
    run = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run
    assert not run.successful and "work" not in [s.id for s in run]


def test_dump_include_max_value_size_tag_list_output_raw_and_help(flow_file, tmp_path):
    ran = python_flow(flow_file, "run", "--executor", "inline", "--tag", "t1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    again = python_flow(flow_file, "run", "--executor", "inline", "--tag", "t2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rid = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run.id
    dump = python_flow(flow_file, "dump", f"{rid}/start/0", "--include", "items,n", cwd=tmp_path)
    assert dump.returncode == 0, dump.stderr
    names = [line.split()[0] for line in dump.stdout.split("Lineage:")[0].splitlines()[2:]]
    assert sorted(names) == ["items", "n"]
    small = python_flow(flow_file, "dump", f"{rid}/start/0", "--max-value-size", "1000",
                        cwd=tmp_path)
    big_line = next(line for line in small.stdout.splitlines() if line.split()[:1] == ["big"])
    assert "< artifact too large >" in big_line and "bbbb" not in big_line
    assert "[0, 1, 2, 3]" in small.stdout  # items is small enough
    tags = python_flow(flow_file, "tag", "list", cwd=tmp_path)  # no --run-id: every run's
    assert tags.returncode == 0 and {"t1", "t2"} <= set(tags.stdout.split()), tags.stderr
    raw = python_flow(flow_file, "output-raw", cwd=tmp_path)
    assert raw.returncode == 0 and "*[work linear (" in raw.stdout
    assert "    is_inside_foreach=True" in raw.stdout
    as_json = json.loads(python_flow(flow_file, "output-raw", "--json", cwd=tmp_path).stdout)
    assert as_json["graph_structure"] == ["start", [["work"]], "join", "risky", "end"]
    assert as_json["graph"]["start"]["foreach_artifact"] == "items"
    helped = python_flow(flow_file, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "output-raw" in helped.stdout and not helped.stderr


@pytest.mark.parametrize("args, needle", [
    ([], "is required"),  # in Metaflow's options: --n given as text below
    (["--n", "2.5"], "expects an integer"),
    (["--n=abc"], "expects an integer"),
])
def test_bad_parameters_exit_2(flow_file, tmp_path, args, needle):
    if not args:  # a missing required parameter
        flow_file.write_text(FLOW.replace('Parameter("n", default=4, type=int)',
                                          'Parameter("n", required=True, type=int)'))
    proc = python_flow(flow_file, "run", "--executor", "inline", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_a_caught_task_is_finished_not_successful_and_says_so_on_stdout(flow_file, tmp_path):
    proc = python_flow(flow_file, "run", "--executor", "inline", "--fail", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run
    risky = run["risky"].task
    assert risky.finished and not risky.successful  # Metaflow's _task_ok and _success
    assert run.successful and run["end"].task.successful
    out = risky.stdout
    assert "@catch caught an exception from <flow OptsFlow step risky>" in out
    assert "risky went wrong" in out
    assert "rayflow/" not in out and 'opts.py", line' in out
    assert "@catch caught" not in risky.stderr
    plain = python_flow(flow_file, "run", "--executor", "inline", cwd=tmp_path)
    assert plain.returncode == 0
    fine = Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run["risky"].task
    assert fine.successful and fine.finished and fine.data.err is None


def test_catch_on_a_foreach_step_is_refused(tmp_path):
    path = tmp_path / "bad_catch.py"
    path.write_text(CATCH_ON_FOREACH)
    proc = python_flow(path, "run", "--executor", "inline", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "@catch is not supported in foreach split steps" in proc.stderr
    assert "'start'" in proc.stderr


def test_resources_beyond_the_machine_run_on_an_embedded_ray(flow_file, tmp_path):
    """Metaflow's local runtime ignores @resources; on a Ray rayflow started on this machine
    a step asking for more than it has runs with what it has, and says so once."""
    proc = python_flow(flow_file, "run", "--n", "2", cwd=tmp_path, RAYFLOW_NO_WARM_RAY="1",
                       RAYFLOW_UNSCHEDULABLE_TIMEOUT="20")
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("Step 'work' asks")]
    assert len(said) == 1, proc.stderr
    assert "asks for cpu=64, gpu=1, memory=10000000 MB" in said[0], said
    assert "runs with cpu=" in said[0] and "no GPU" in said[0] and "--address" in said[0]
    assert Flow("OptsFlow", datastore=str(tmp_path / ".rayflow")).latest_run.successful


def test_datastore_type_without_a_root_is_a_usage_error(flow_file, tmp_path):
    proc = python_flow(flow_file, "--datastore", "s3", "run", "--executor", "inline",
                       cwd=tmp_path)
    assert proc.returncode == 2 and "--datastore-root" in proc.stderr, proc.stderr
    assert not (tmp_path / "s3").exists() and not (tmp_path / ".rayflow").exists()
