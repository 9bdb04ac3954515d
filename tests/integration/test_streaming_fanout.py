"""The streaming fan-out (rayflow/runtime/fanout.py): a foreach's splits go out as index ranges
and come back to the driver as one summary a batch, their join inputs staying in the object
store; the join still sees every split, a retried split joins them, resume still clones."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from rayflow import Run
from rayflow.datastore import FlowDataStore
from rayflow.parameters import resolve_parameters
from rayflow.runtime.flowfile import load_flow
from rayflow.runtime.resume import ResumeRequest
from rayflow.runtime.run_loop import RunLoop, RunOptions

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("global_namespace")]

FLOW = os.path.join(os.path.dirname(os.path.dirname(__file__)), "flows", "fanout_flow.py")


class ProbedRun(RunLoop):
    """A run that notes the driver's Python memory when its join is submitted: every split
    has finished then, and none has been released by the join yet."""

    at_join: int | None = None

    def _submit_batch(self, batch) -> None:
        if batch.step == "join" and self.at_join is None:
            self.at_join = tracemalloc.get_traced_memory()[0]
        super()._submit_batch(batch)


class RayProbedRun(RunLoop):
    """A run that notes, when its join is submitted, what the driver holds in Ray: the bytes
    and objects of its own in-process memory store (where Ray keeps a small task return, with
    its owner) and the object refs it holds."""

    at_join: tuple | None = None

    def _submit_batch(self, batch) -> None:
        if batch.step == "join" and self.at_join is None:
            import ray

            core = ray._private.worker.global_worker.core_worker
            self.at_join = (core.get_local_memory_store_bytes_used(),
                            core.get_memory_store_size(), len(core.get_all_reference_counts()))
        super()._submit_batch(batch)


def _run(datastore, params, cls=RunLoop, **opts):
    loaded = load_flow(FLOW)
    values = resolve_parameters(loaded.cls, {k: str(v) for k, v in params.items()})
    loop = cls(loaded, values, RunOptions(datastore_url=datastore, progress=False, **opts))
    return loop, loop.run()


def _expected(width):
    return [(i, 3 * i, f"item-{i}:inh", f"item-{i}") for i in range(width)]


def test_the_join_sees_every_split_in_order(ray_session, datastore):
    loop, s = _run(datastore, {"width": 3000, "flaky_at": 1234})
    assert s.successful, s.failures
    # Batches came back whole: a report row stands for many splits.
    assert max(loop.rows.span) > 1
    run = Run(s.pathspec, datastore=datastore)
    join = run["join"].task
    assert [tuple(x) for x in join.data.seen] == _expected(3000)
    assert join.data.shared_seen == {"inherited by every split"}
    assert len(list(join.parent_task_pathspecs)) == 3000
    ds = FlowDataStore.from_url(datastore, "FanoutFlow")
    assert len(ds.done_task_ids(s.run_id, "work")) == 3000
    # The retried split went the per-split way and still joined in its place.
    flaky = [t for t in run["work"] if t.index == 1234]
    assert flaky and flaky[0].current_attempt == 1 and flaky[0].data.out == 3 * 1234


def test_driver_memory_does_not_grow_with_the_width(ray_session, datastore):
    growth = {}
    for width in (2_000, 20_000):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            loop, s = _run(f"{datastore}-{width}", {"width": width}, cls=ProbedRun)
            growth[width] = loop.at_join - before
        finally:
            tracemalloc.stop()
        assert s.successful, s.failures
    # The per-split way kept about 150 bytes a split until the join (its columns and the
    # report's rows): 2.7 MB more for the 18,000 more splits. Streamed, a batch costs a few
    # hundred bytes, whatever its size.
    extra = growth[20_000] - growth[2_000]
    assert extra < 18_000 * 40, growth


def test_the_driver_holds_no_ray_object_per_finished_batch(ray_session, datastore):
    """Each finished batch's join segment is in the datastore and its payload let go (every
    value is inline): what the driver holds in Ray at the join does not grow with the width
    (it kept a payload and a segment a batch, about 170 bytes a split, in its memory store)."""
    held = {}
    for width in (2_000, 20_000):
        loop, s = _run(f"{datastore}-ray-{width}", {"width": width}, cls=RayProbedRun)
        assert s.successful, s.failures
        held[width] = loop.at_join
        run = Run(s.pathspec, datastore=f"{datastore}-ray-{width}")
        assert [tuple(x) for x in run["join"].task.data.seen] == _expected(width)
    (bytes_small, objects_small, refs_small), (bytes_big, objects_big, refs_big) = \
        held[2_000], held[20_000]
    assert bytes_big - bytes_small < 50_000, held
    assert objects_big - objects_small < 20, held
    assert refs_big - refs_small < 20, held


def test_a_join_reads_values_too_big_to_be_inline_from_the_kept_payload(ray_session,
                                                                       datastore):
    _, s = _run(datastore, {"width": 600, "blob": 4096})
    assert s.successful, s.failures
    join = Run(s.pathspec, datastore=datastore)["join"].task
    assert join.data.big_seen == [(4096, bytes([i % 256])) for i in range(600)]
    assert [tuple(x) for x in join.data.seen] == _expected(600)


def test_resume_after_a_failed_split_clones_the_finished_ones(ray_session, datastore,
                                                               tmp_path):
    marker = tmp_path / "fail"
    marker.write_text("")
    params = {"width": 2500, "fail_at": 2100, "marker": str(marker)}
    _, failed = _run(datastore, params)
    assert not failed.successful
    assert [(f.step, f.error.message) for f in failed.failures] == \
        [("work", "split 2100 was told to fail")]
    os.remove(marker)
    _, resumed = _run(datastore, params,
                      resume=ResumeRequest(origin_run_id=failed.run_id))
    assert resumed.successful, resumed.failures
    ds = FlowDataStore.from_url(datastore, "FanoutFlow")
    done_before = ds.done_task_ids(failed.run_id, "work")
    # Every split the failed run finished was cloned (start too), not run again.
    assert resumed.tasks_cloned >= len(done_before) + 1
    run = Run(resumed.pathspec, datastore=datastore)
    assert [tuple(x) for x in run["join"].task.data.seen] == _expected(2500)
    redone = [t for t in run["work"] if t.index == 2100]
    assert redone and redone[0].origin_pathspec is None
