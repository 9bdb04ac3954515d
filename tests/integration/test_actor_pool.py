"""@actor_pool on a real Ray with fake GPUs (the session's ray.init(num_gpus=2)): setup once
per actor, the pool grows to max under load and back to min when idle, a crashed actor is
replaced and its task run again, fractional GPUs, and resume of a pooled step."""

import os
from collections import defaultdict

import pytest

from rayflow.client import Run, namespace
from rayflow.exceptions import InvalidFlowError


def _seen(run):
    return run["join"].task.data.seen


def test_setup_once_per_actor_and_the_pool_follows_the_load(run_flow, datastore):
    namespace(None)
    s = run_flow("pool_flow.py", {"width": 12, "work": 0.3, "hold": 3.0})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run["join"].task.data.outs == [1000 + i for i in range(12)]
    by_token = defaultdict(list)
    for token, pid, index, before, _gpus in _seen(run):
        by_token[token].append((pid, index, before))
    # One setup per actor process, and each actor served several splits in turn.
    assert len(by_token) == len({pid for pid, _, _ in sum(by_token.values(), [])})
    assert 1 <= len(by_token) <= 3
    assert any(len(v) > 1 for v in by_token.values())
    for served in by_token.values():
        assert sorted(b for _, _, b in served) == list(range(len(served)))
    sizes = [n for _, pool, n in s.pool_history if pool == "infer"]
    assert max(sizes) == 3 and sizes[0] == 1      # grew with the queue, to max
    assert sizes[-1] == 0                         # and back to min=0 while `linger` ran
    # Every task is its own record, with its worker: the timeline shows the actors as lanes.
    pids = {t["pid"].data for t in run["infer"]}
    assert pids == {pid for pid, _, _ in sum(by_token.values(), [])}


def test_fractional_gpus_one_device_per_actor(run_flow, datastore):
    namespace(None)
    s = run_flow("pool_flow.py", {"width": 9, "work": 0.2})
    assert s.successful, s.failures
    per_pid = {}
    for _, pid, _, _, gpus in _seen(Run(s.pathspec, datastore=datastore)):
        assert len(gpus) == 1, gpus                  # gpu=0.5: one device, shared
        per_pid[pid] = gpus[0]
    # Two fake GPUs, half a GPU each: no device holds more than two actors at once.
    assert all(list(per_pid.values()).count(g) <= 2 for g in set(per_pid.values()))


def test_a_crashed_actor_is_replaced_and_its_task_runs_again(run_flow, datastore, tmp_path):
    namespace(None)
    # An early split crashes while many wait: the pool needs a replacement for the dead actor.
    s = run_flow("pool_flow.py", {"width": 12, "crash_at": 2, "work": 0.5,
                                  "marker_dir": str(tmp_path)})
    assert s.successful, s.failures
    assert (tmp_path / "crashed-2").exists()
    run = Run(s.pathspec, datastore=datastore)
    assert run["join"].task.data.outs == [1000 + i for i in range(12)]
    tokens = {t for t, *_ in _seen(run)}
    pids = {p for _, p, *_ in _seen(run)}
    assert len(tokens) == len(pids)   # the restarted actor ran setup again, in its new process
    # The pool's history shows the death as it happened, and the replacement once it is up.
    events = _pool_log(s, datastore)["events"]
    died = [e for e in events if e[3] == "died"]
    assert len(died) == 1, events
    t_died, dead = died[0][0], died[0][2]
    assert any(e[3] == "up" and e[2] != dead and e[0] > t_died for e in events), events
    assert not any(e[2] == dead and e[0] > t_died for e in events if e is not died[0])
    up_then = [n for t, p, n in s.pool_history if p == "infer" and t >= t_died]
    assert up_then[0] < max(n for t, p, n in s.pool_history if t <= t_died)
    # The run report draws the pool: its size over time, the death marked, the events listed.
    with open(s.report) as fh:
        html = fh.read()
    assert 'id="pools"' in html and 'class="pool-size"' in html and 'class="died"' in html


def test_resume_of_a_pooled_step(run_flow, datastore, tmp_path, task_at):
    from rayflow.runtime.resume import ResumeRequest

    namespace(None)
    (tmp_path / "fail").touch()
    first = run_flow("pool_flow.py", {"width": 6, "fail_at": 4, "marker_dir": str(tmp_path)})
    assert not first.successful
    (tmp_path / "fail").unlink()
    second = run_flow("pool_flow.py", None, resume=ResumeRequest(origin_run_id=first.run_id))
    assert second.successful, second.failures
    run = Run(second.pathspec, datastore=datastore)
    assert run["join"].task.data.outs == [1000 + i for i in range(6)]
    assert task_at(run, "infer", 4).origin_pathspec is None
    assert all(task_at(run, "infer", i).origin_pathspec for i in (0, 1, 2, 3, 5))


def test_pool_settings_are_checked():
    from rayflow import actor_pool, step

    with pytest.raises(InvalidFlowError, match="max must be at least 1 and at least min"):
        @actor_pool(min=3, max=2)
        @step
        def a(self):
            pass
    with pytest.raises(InvalidFlowError, match="setup is a function"):
        @actor_pool(setup=42)
        @step
        def b(self):
            pass


def test_steps_that_share_a_pool_must_ask_for_the_same_size(run_flow, tmp_path):
    flow = tmp_path / "two_sizes_flow.py"
    flow.write_text(
        "from rayflow import FlowSpec, actor_pool, resources, step\n\n"
        "class TwoSizesFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.a)\n\n"
        "    @resources(cpu=1)\n"
        "    @actor_pool(name='p')\n"
        "    @step\n"
        "    def a(self):\n"
        "        self.next(self.b)\n\n"
        "    @resources(cpu=2)\n"
        "    @actor_pool(name='p')\n"
        "    @step\n"
        "    def b(self):\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n")
    with pytest.raises(InvalidFlowError, match="Steps 'a' and 'b' share the actor pool 'p'"):
        run_flow(str(flow))


def test_setup_runs_once_per_process_inline(run_flow, datastore):
    namespace(None)
    s = run_flow("pool_flow.py", {"width": 5, "work": 0.0}, executor="inline")
    assert s.successful, s.failures
    seen = _seen(Run(s.pathspec, datastore=datastore))
    assert len({t for t, *_ in seen}) == 1 and {p for _, p, *_ in seen} == {os.getpid()}
    assert [b for *_, b, _ in seen] == sorted(b for *_, b, _ in seen)


def _pool_log(s, datastore):
    from rayflow.datastore import FlowDataStore
    from rayflow.report.pools import load_pool_log

    return load_pool_log(FlowDataStore.from_url(datastore, s.flow), s.run_id)


def test_a_pool_ends_when_no_later_step_uses_it(run_flow, datastore):
    # Two actors of 1 CPU hold both CPUs of the test Ray, idle_timeout=600: the join gets a
    # CPU only because the pool ends once its last task is done (issue 29: it waited 31 s).
    namespace(None)
    s = run_flow("pool_share_flow.py", {"width": 4, "work": 0.3})
    assert s.successful, s.failures
    join = Run(s.pathspec, datastore=datastore)["join"].task.data
    assert join.outs == [0, 2, 4, 6]
    gap = join.began - join.last_pooled
    print(f"the join began {gap:.2f} s after the last pooled task")
    assert gap < 5.0, gap  # 1 s on a quiet machine; room for a loaded one
    downs = [e for e in _pool_log(s, datastore)["events"] if e[3] == "down"]
    assert downs and all(e[4] == "no step still to run uses it" for e in downs), downs
    assert max(e[0] for e in downs) < join.began


def test_idle_actors_give_way_to_a_step_waiting_for_their_cpus(ray_session, datastore, capsys):
    # `again` uses the pool later, so it may not end; its idle actors hold both CPUs while
    # `join` and `work_step` wait for one: they give way instead of idling for 600 s, and the
    # progress says why the join waited.
    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    namespace(None)
    loaded = load_flow(os.path.join(os.path.dirname(__file__), "..", "flows",
                                    "pool_give_way_flow.py"))
    values = resolve_parameters(loaded.cls, {"width": "4", "work": "0.3"})
    s = RunLoop(loaded, values, RunOptions(datastore_url=datastore, progress=True)).run()
    assert s.successful, s.failures
    assert "join: waiting for 1 CPU: infer/again's pool holds 2 of 2" in capsys.readouterr().err
    run = Run(s.pathspec, datastore=datastore)
    join = run["join"].task.data
    gap = join.began - join.last_pooled
    print(f"the join began {gap:.2f} s after the last pooled task")
    assert gap < 10.0, gap
    events = _pool_log(s, datastore)["events"]
    gave = [e for e in events if e[3] == "down" and e[4].startswith("gave way")]
    assert gave and min(e[0] for e in gave) < join.began, events
    # The pool served `again` after giving way: an actor was up again for it.
    assert any(e[3] == "up" and e[0] > max(run["join2"].task.data.work_began)
               for e in events), events
