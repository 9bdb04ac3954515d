"""The `rayflow` command as a user runs it: a subprocess joined to the session's Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWS = os.path.join(ROOT, "tests", "flows")


def _one_message(proc, code=1):
    """A user error: exit 1 (2 for a usage error), no traceback, the message on stderr."""
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_run_with_parameters_and_client(cli, datastore, tmp_path):
    id_file = tmp_path / "run_id"
    proc = cli("run", "tests/flows/params_flow.py", "--must", "3", "--alpha", "0.1", "--flag",
               "--count=9", "--run-id-file", str(id_file), check=0)
    assert "Done: ParamsFlow/" in proc.stderr
    from rayflow import Run, namespace

    namespace(None)
    run = Run(f"ParamsFlow/{id_file.read_text()}", datastore=datastore)
    assert run.data.seen["alpha"] == 0.1 and run.data.seen["flag"] is True
    assert run.data.seen["count"] == 9 and run.data.seen["must"] == 3


def test_python_flow_py_run(ray_session, datastore):
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
           "RAYFLOW_DATASTORE": datastore}
    proc = subprocess.run([sys.executable, "examples/branches.py", "run", "--size", "4"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Done: BranchFlow/" in proc.stderr
    show = subprocess.run([sys.executable, "examples/branches.py", "show"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert show.returncode == 0 and "sum_even" in show.stdout


@pytest.mark.parametrize("args,needle", [
    (["--must", "x"], "expects an integer"),
    (["--must", "1", "--alpha", "fast"], "expects a number"),
    (["--must", "1", "--flag", "maybe"], "expects a boolean"),
    (["--must", "1", "--config", "{bad json"], "expects JSON"),
    (["--must", "1", "--nope", "1"], "has no parameter --nope"),
    ([], "'must' of flow ParamsFlow is required"),
    (["--must", "1", "--notes", "/does/not/exist"], "cannot read '/does/not/exist'"),
    (["--must", "2.5"], "expects an integer"),
])
def test_parameter_errors_are_one_message(cli, args, needle):
    # A usage error, as Metaflow's (click's): exit 2, and the README promises it.
    err = _one_message(cli("run", "tests/flows/params_flow.py", *args), code=2)
    assert needle in err and err.count("\n") <= 2, err


def test_resume_with_a_flow_parameter_is_a_usage_error(cli):
    err = _one_message(cli("resume", "tests/flows/params_flow.py", "--alpha", "9"), code=2)
    assert "resume takes no flow parameters" in err


def test_lint_error_is_one_message_and_starts_no_ray(datastore):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAYFLOW_DATASTORE"] = datastore
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "rayflow_cli.main", "run",
                           "tests/flows/bad/missing_next.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    err = _one_message(proc)
    assert "missing_next.py:6" in err and "'start'" in err.replace('*', "'")
    assert "self.next" in err
    assert "Ray" not in err and time.time() - t0 < 15
    check = subprocess.run([sys.executable, "-m", "rayflow_cli.main", "check",
                            "tests/flows/bad/missing_next.py"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "Traceback" not in check.stderr


def test_missing_file_and_unknown_flow(cli):
    assert "does not exist" in _one_message(cli("run", "no/such/flow.py"))
    assert "no flow class named" in _one_message(
        cli("run", "examples/hello.py", "--flow", "Nope"))


def test_failing_step_shows_the_users_traceback(cli):
    proc = cli("run", "tests/flows/failing_flow.py")
    assert proc.returncode == 1
    err = proc.stderr
    assert "Step failed" in err and "split three is broken" in err
    final = err.split("Step failed", 1)[1]
    assert f'{ROOT}/tests/flows/failing_flow.py", line 15, in work' in final
    assert "rayflow/runtime" not in final and "ray/_private" not in final
    assert "rayflow resume tests/flows/failing_flow.py --origin-run-id" in err


def test_inspection_commands(cli, datastore, tmp_path):
    id_file = tmp_path / "rid"
    cli("run", "examples/hello.py", "--name", "Dump", "--tag", "first",
        "--run-id-file", str(id_file), check=0)
    rid = id_file.read_text()
    logs = cli("logs", f"HelloFlow/{rid}/hello/1", check=0)  # start is task 0, hello 1
    assert "Hello, Dump!" in logs.stdout
    dump = cli("dump", f"HelloFlow/{rid}/start/0", check=0)
    assert "greeting" in dump.stdout and "code_hash" in dump.stdout
    assert "Hello, Dump!" in dump.stdout
    runs = cli("runs", "HelloFlow", "--all", check=0)
    assert rid in runs.stdout and "success" in runs.stdout and "first" in runs.stdout
    cli("tag", "add", f"HelloFlow/{rid}", "blue", "green", check=0)
    cli("tag", "remove", f"HelloFlow/{rid}", "green", check=0)
    listed = cli("tag", "list", f"HelloFlow/{rid}", check=0)
    assert listed.stdout.split() == ["blue", "first"]


def test_with_retry_from_the_command_line(cli, tmp_path):
    # The flow fails once per split unless retried: --with retry makes it pass.
    flaky = tmp_path / "flaky_flow.py"
    flaky.write_text(
        "from rayflow import FlowSpec, current, step\n"
        "class FlakyFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        if current.retry_count == 0:\n"
        "            raise ValueError('first attempt fails')\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n")
    assert cli("run", str(flaky)).returncode == 1
    cli("run", str(flaky), "--with", "retry:times=1,minutes_between_retries=0", check=0)


def test_a_metaflow_tutorial_flow_runs_unchanged_but_for_its_import(ray_session, datastore):
    """As a new user would: `python flow.py run` from the flow's folder, then the client."""
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
           "RAYFLOW_DATASTORE": datastore}
    proc = subprocess.run([sys.executable, "metaflow_style.py", "run", "--genre", "sci-fi"],
                          cwd=FLOWS, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Bonus Pick: 'Up'" in proc.stdout + proc.stderr
    from rayflow import Flow, namespace

    namespace(None)
    run = Flow("PlaylistFlow", datastore=datastore).latest_successful_run
    assert sorted(run.data.playlist) == ["Alien", "Arrival", "Blade Runner", "Dune"]
    assert run.data.bonus == "Up" and len(run.data.lengths) == 4
    assert run.data.dataframe["title_year"][0] == 1979
    assert run["genre_movies"].task.data.run_seen == run.id
    check = subprocess.run([sys.executable, "metaflow_style.py", "check"], cwd=FLOWS,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "looks good" in check.stdout


def test_foreach_over_something_not_iterable_names_step_and_variable(cli):
    proc = cli("run", "tests/flows/not_iterable_flow.py")
    assert proc.returncode == 1
    final = proc.stderr.split("Step failed", 1)[1]
    assert "self.things is a int, which is not iterable" in final and "'start'" in final


def test_run_help_lists_the_flows_parameters(cli):
    proc = cli("run", "tests/flows/params_flow.py", "--help", check=0)
    assert "--datastore" in proc.stdout and "Parameters of ParamsFlow" in proc.stdout
    assert "--must INT [required]" in proc.stdout


def test_every_task_line_reaches_the_console_as_printed(cli):
    """Ray would merge lines from different workers that differ only in their numbers into
    one "[repeated Nx across cluster]" line; each task's line is its own."""
    proc = cli("run", "tests/flows/chatty_flow.py", check=0)
    lines = [ln for ln in proc.stdout.splitlines() if "says 42 times hello" in ln]
    run_id = proc.stderr.split("Done: ChattyFlow/")[1].split()[0]
    assert sorted(lines) == sorted(f"[{run_id}/talk/{1 + i}] split {i} says 42 times hello"
                                   for i in range(8)), proc.stdout
    assert "repeated" not in proc.stdout + proc.stderr
