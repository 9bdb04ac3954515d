"""A step that crashes its own process (named, recorded with its logs, run only as @retry
says), one whose process dies on every attempt (@catch still catches it), one stuck past its
@timeout (ended by the worker's watchdog), and an artifact that cannot be saved (the user's
line, the artifact's name, and a run that resume finishes once the step is fixed)."""

from __future__ import annotations

import time

import pytest

from rayflow import Run
from rayflow.runtime.resume import ResumeRequest
from tests.reliability.audit import audit_run

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]


def test_a_segfaulting_step_is_named_recorded_with_its_logs_and_run_once(run_flow, datastore,
                                                                        tmp_path):
    counter = tmp_path / "runs"
    s = run_flow("segfault_flow.py", {"counter": str(counter)})
    assert not s.successful
    [failure] = s.failures
    assert failure.step == "crash" and failure.error.kind.value == "user"
    assert "died with SIGSEGV (segmentation fault)" in failure.error.message
    assert counter.read_text() == "ran\n", "Ray ran the crashing step again"
    task = Run(s.pathspec, datastore=datastore)["crash"].task
    assert not task.successful and "SIGSEGV" in str(task.exception)
    assert "Crash and burn!" in task.stdout
    assert "Fatal Python error: Segmentation fault" in task.stderr
    assert "segmentation fault" in task.stderr


def test_catch_catches_a_step_whose_process_dies_on_every_attempt(run_flow, datastore):
    s = run_flow("killed_catch_flow.py")
    assert s.successful, s.failures
    end = Run(s.pathspec, datastore=datastore)["end"].task
    assert end.data.kind == "metaflow.plugins.catch_decorator.FailureHandledByCatch"
    doomed = Run(s.pathspec, datastore=datastore)["doomed"].task
    assert doomed.current_attempt == 2  # two attempts died, the third ran no user code
    assert "kept failing over 2 attempts" in doomed.data.ex.exception


def test_a_step_stuck_past_its_timeout_is_ended_and_caught(run_flow, datastore):
    t0 = time.time()
    s = run_flow("stuck_timeout_flow.py")
    assert s.successful, s.failures
    assert time.time() - t0 < 50, "the stuck step ran its full minute"
    end = Run(s.pathspec, datastore=datastore)["end"].task
    assert end.data.kind == "metaflow.plugins.timeout_decorator.TimeoutException"


UNSAVEABLE_FLOW = '''
import os
import threading
from rayflow import FlowSpec, Parameter, step


class UnsaveableFlow(FlowSpec):
    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.out = self.input * 10
        if self.input == 2 and os.path.exists(self.marker):
            self.lock = threading.Lock()   # cannot be pickled
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def test_an_unsaveable_artifact_fails_its_task_by_name_and_resume_finishes(run_flow, datastore,
                                                                           tmp_path):
    flow = tmp_path / "unsaveable_flow.py"
    flow.write_text(UNSAVEABLE_FLOW)
    marker = tmp_path / "unsaveable"
    marker.write_text("")
    s = run_flow(str(flow), {"marker": str(marker)})
    assert not s.successful
    [failure] = s.failures
    err = failure.error
    assert failure.step == "work" and not err.retryable
    assert "lock" in err.message, err.message
    audit = audit_run(datastore, "UnsaveableFlow", s.run_id)
    assert audit.status == "failed"
    assert audit.done["work"] == {"1", "3"}        # splits 0 and 2 (tasks 1, 3) are kept
    assert "join" not in audit.done
    marker.unlink()
    resumed = run_flow(str(flow), None, resume=ResumeRequest(origin_run_id=s.run_id))
    assert resumed.successful, resumed.failures
    run = Run(resumed.pathspec, datastore=datastore)
    assert run["join"].task.data.total == 60
    assert {t.index for t in run["work"] if t.origin_pathspec} == {0, 2}
