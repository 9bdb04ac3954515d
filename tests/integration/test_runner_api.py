"""Driving flows from Python: Runner (run, resume, async_run with streamed logs, timeouts) and
NBRunner (a flow class defined in the test, as a notebook would define it)."""

from __future__ import annotations

import asyncio
import os

import pytest

from rayflow import FlowSpec, NBRunner, Parameter, Runner, step
from rayflow.runner.runner import RunnerError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESUMABLE = os.path.join(ROOT, "tests", "flows", "resumable_flow.py")
HELLO = os.path.join(ROOT, "examples", "hello.py")


def test_runner_runs_a_flow_on_ray_and_reads_it_back(cli_env, datastore, tmp_path):
    with Runner(RESUMABLE, show_output=False, env=cli_env(datastore),
                datastore=datastore).run(width=3, marker_dir=str(tmp_path),
                                         tags=["from-runner"]) as running:
        assert running.status == "successful" and running.returncode == 0
        run = running.run
        assert run.successful and run.data.final == 6
        assert "from-runner" in run.tags
        assert "working on 2" in running.stdout
        assert "Done: ResumableFlow/" in running.stderr


def test_a_failed_run_then_resume_through_the_runner(datastore, tmp_path):
    (tmp_path / "fail-1").write_text("")
    runner = Runner(RESUMABLE, show_output=False, datastore=datastore, executor="inline")
    failed = runner.run(width=3, marker_dir=str(tmp_path))
    assert failed.status == "failed" and failed.returncode == 1
    assert not failed.run.successful
    assert "split 1 was told to fail" in failed.stderr
    (tmp_path / "fail-1").unlink()
    resumed = runner.resume(origin_run_id=failed.run.id)
    assert resumed.status == "successful"
    assert resumed.run.data.final == 6 and resumed.run.id != failed.run.id
    assert {t.index for t in resumed.run["work"] if t.origin_pathspec} == {0, 2}
    runner.cleanup()


def test_async_run_streams_the_logs_while_the_run_goes_on(datastore, tmp_path):
    async def go():
        async with Runner(RESUMABLE, datastore=datastore, executor="inline") as runner:
            running = await runner.async_run(width=4, sleep=0.2, marker_dir=str(tmp_path))
            assert running.status == "running" and running.returncode is None
            lines = [line async for _, line in running.stream_log("stdout")]
            await running.wait()
            return running, lines

    running, lines = asyncio.run(go())
    assert running.status == "successful"
    assert [ln for ln in lines if "working on" in ln] == \
        [f"[{running.run.id}/work/{i + 1}] working on {i}" for i in range(4)]  # split i: task i+1


def test_wait_with_a_timeout_ends_the_run(datastore, tmp_path):
    async def go():
        runner = Runner(RESUMABLE, datastore=datastore, executor="inline")
        running = await runner.async_run(width=2, sleep=60, marker_dir=str(tmp_path))
        await running.wait(timeout=1)
        status = running.status
        runner.cleanup()
        return status, running

    status, running = asyncio.run(go())
    assert status == "timeout" and running.returncode not in (None, 0)


def test_a_bad_parameter_is_the_runners_error_with_the_cli_message(datastore):
    with pytest.raises(RunnerError, match="has no parameter --nope"):
        Runner(HELLO, show_output=False, datastore=datastore).run(nope=1)
    with pytest.raises(RunnerError, match="Unknown argument 'colour'"):
        Runner(HELLO, colour="red")
    with pytest.raises(RunnerError, match="does not exist"):
        Runner("no_such_flow.py")


def test_nbrunner_runs_a_flow_class_defined_here(datastore, tmp_path):
    class NotebookFlow(FlowSpec):
        alpha = Parameter("alpha", default=2)

        @step
        def start(self):
            self.x = self.alpha * 10
            self.next(self.end)

        @step
        def end(self):
            print("x is", self.x)

    run = NBRunner(NotebookFlow, show_output=False, base_dir=str(tmp_path),
                   datastore=datastore, executor="inline").nbrun(alpha=5)
    assert run.successful and run.data.x == 50
    assert run["end"].task.stdout.strip() == "x is 50"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".py")], "flow file left behind"


def test_nbresume_resumes_a_notebook_flow(datastore, tmp_path):
    marker = str(tmp_path / "fail-now")

    class FlakyNotebookFlow(FlowSpec):
        marker = Parameter("marker", default="")

        @step
        def start(self):
            self.items = [1, 2, 3]
            self.next(self.end)

        @step
        def end(self):
            import os

            if os.path.exists(self.marker):
                raise RuntimeError("told to fail")
            self.total = sum(self.items)

    open(marker, "w").close()
    nb = NBRunner(FlakyNotebookFlow, show_output=False, base_dir=str(tmp_path),
                  datastore=datastore, executor="inline")
    failed = nb.run(marker=marker)
    assert failed.status == "failed"
    os.remove(marker)
    run = nb.nbresume(origin_run_id=failed.run.id)
    assert run.successful and run.data.total == 6
    assert run["start"].task.origin_pathspec == f"{failed.run.pathspec}/start/0"
