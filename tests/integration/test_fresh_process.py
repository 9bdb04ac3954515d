"""Each task sees a fresh process, as in Metaflow, though rayflow's workers are reused: module
globals, os.environ, the working directory and sys.argv (tests/flows/fresh_process_flow.py);
output written below sys.stdout is in the task's log; what Metaflow keeps or skips among the
attributes set on self."""

from __future__ import annotations

import pytest

from rayflow import Run

pytestmark = pytest.mark.integration

WIDTH = 40


def _fresh(found: dict, first: dict) -> None:
    assert found["counter"] == 0 and found["env"] is None and not found["added"], found
    # Module globals changed in place (a list appended to, a dict's entry, an attribute).
    assert found["seen"] == [] and found["calls"] == 0 and found["box"] == 0, found
    assert found["cwd"] == first["cwd"], found
    assert found["argv0"] in ("fresh_process_flow.py", "fresh_pool_flow.py"), found


def _check_run(s, datastore, width: int = WIDTH) -> Run:
    assert s.successful, s.failures[0].error.describe() if s.failures else ""
    run = Run(s.pathspec, datastore=datastore)
    first = run["start"].task.data.first
    _fresh(first, first)
    saws = run["join"].task.data.saws
    assert len(saws) == width
    for saw in saws:
        _fresh(saw, first)
    _fresh(run["end"].task.data.last, first)
    return run


def _check_logs(run: Run) -> None:
    for task in run["split"]:
        i = task.index
        out = task.stdout.splitlines()
        mine = [line for line in out if line.endswith(f"-{i}")]
        assert mine == [f"system-{i}", f"subprocess-{i}", f"fdwrite-{i}", f"python-{i}"], out
        assert f"fderr-{i}" in task.stderr.splitlines(), task.stderr
        if i == 0:
            assert "z" * 300_000 in out
        else:
            assert not any(line.startswith("zzz") for line in out)


def test_each_task_starts_from_a_fresh_process_state_and_logs_its_fd_output(run_flow,
                                                                             datastore):
    s = run_flow("fresh_process_flow.py", {"width": WIDTH})
    run = _check_run(s, datastore)
    pids = [saw["pid"] for saw in run["join"].task.data.saws]
    assert len(set(pids)) < len(pids), "no worker process ran two splits"
    _check_logs(run)
    # A process forked by the step (multiprocessing) writes to the fds: in the task's log.
    assert "forked-child" in run["start"].task.stdout.splitlines()


def test_an_actor_pool_gives_each_task_a_fresh_state_and_its_fd_output(run_flow, datastore):
    s = run_flow("fresh_pool_flow.py", {"width": 8})
    run = _check_run(s, datastore, width=8)
    _check_logs(run)
    pids = {saw["pid"] for saw in run["join"].task.data.saws}
    assert len(pids) == 1, pids  # one actor served every split
    # What the pool's setup bound in the flow module stays for every task of the actor.
    assert {saw["model"] for saw in run["join"].task.data.saws} == {"loaded"}
    assert {saw["setup"] for saw in run["join"].task.data.saws} == {"done"}


def test_private_names_functions_and_del_as_in_metaflow(run_flow, datastore):
    s = run_flow("fresh_process_flow.py", {"width": 2})
    assert s.successful, s.failures[0].error.describe() if s.failures else ""
    run = Run(s.pathspec, datastore=datastore)
    start = run["start"].task
    # "_x" artifacts are kept and passed on, read by name, left out of listings.
    assert start["_private"].data == "kept"
    assert start["_FreshProcessFlow__mangled"].data == "kept too"
    names = [a.id for a in start]
    assert not [n for n in names if n.startswith("_")], names
    assert "_private" not in start.data
    # Functions and methods are skipped silently; other callables are values.
    assert not {"func", "method", "plain"} & set(names), names
    assert start["builtin"].data is len
    end = run["end"].task
    assert end.data.private_seen == "kept" and end.data.mangled_seen == "kept too"
    assert end.data.side == 3
    # `del self.x` of an inherited artifact: Metaflow 2.19 still passes it on.
    assert end["doomed"].data == "inherited"
