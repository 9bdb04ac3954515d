"""Progress that does not lie: a step's total is what its foreach will make, known once every
parent has fanned out; until then "of at least N" and no ETA (issue 30, item 5)."""

from __future__ import annotations

import io

from rayflow import FlowSpec, step
from rayflow.runtime.flowfile import graph_of
from rayflow.runtime.progress import ExpectedTotals, Progress


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.outer = [1, 2, 3]
        self.next(self.a, foreach="outer")

    @step
    def a(self):
        self.inner = list(range(self.input))
        self.next(self.b, foreach="inner")

    @step
    def b(self):
        self.next(self.c)

    @step
    def c(self):
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class SwitchFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.mode = "x"
        self.next({"x": self.x, "y": self.y}, condition="mode")

    @step
    def x(self):
        self.next(self.after)

    @step
    def y(self):
        self.next(self.after)

    @step
    def after(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


def test_totals_of_a_nested_foreach_are_exact_once_every_parent_fanned_out():
    totals = ExpectedTotals(graph_of(NestedFlow))
    assert totals.total("start") == (1, True)
    assert totals.total("a") == (0, False)  # start has not fanned out yet
    totals.fanned_out("start", 3)
    assert totals.total("a") == (3, True)
    assert totals.total("join_outer") == (1, True)
    totals.fanned_out("a", 1)
    assert totals.total("b") == (1, False)   # at least 1: two parents to go
    assert totals.total("c") == (1, False)
    totals.fanned_out("a", 2)
    totals.fanned_out("a", 0)                # an empty foreach counts: it fanned out
    assert totals.total("b") == (3, True)
    assert totals.total("c") == (3, True)
    assert totals.total("join_inner") == (3, True)  # one per task of a


def test_a_step_behind_a_switch_has_no_count_before_it_runs():
    totals = ExpectedTotals(graph_of(SwitchFlow))
    totals.fanned_out("start", 2)
    assert totals.total("each") == (2, True)
    assert totals.total("x") == (None, False)
    assert totals.total("after") == (2, True)  # the cases meet again: once per split


def _lines(progress: Progress) -> list[str]:
    progress.tick(force=True)
    return progress.stream.getvalue().splitlines()


def test_progress_shows_at_least_and_no_eta_until_the_total_is_known():
    out = io.StringIO()
    progress = Progress(enabled=True, interval=0, stream=out, graph=graph_of(NestedFlow))
    progress.add_total("start", 1)
    progress.submitted("start", 1)
    progress.finished("start", 1, 0)
    progress.fanned_out("start", 3)
    progress.add_total("a", 3)
    progress.submitted("a", 3)
    progress.finished("a", 1, 0)
    progress.fanned_out("a", 10)
    progress.add_total("b", 10)
    progress.submitted("b", 10)
    progress.finished("b", 5, 0)
    line = [x for x in _lines(progress) if x.startswith("b ")][-1]
    assert "5 done of at least 10" in line and "eta" not in line, line
    sp = progress.steps["b"]
    assert (sp.total, sp.exact, sp.finished) == (10, False, None)
    progress.finished("b", 5, 0)            # all b's so far: not finished, more to come
    assert progress.steps["b"].finished is None
    progress.finished("a", 2, 0)
    progress.fanned_out("a", 10)
    progress.fanned_out("a", 10)            # every a fanned out: the total is 30, for good
    progress.add_total("b", 20)
    progress.submitted("b", 20)
    progress.finished("b", 1, 0)
    line = [x for x in _lines(progress) if x.startswith("b ")][-1]
    assert "11/30 done" in line and "eta" in line, line
    # The total seen before any of the later splits arrived was already the final one.
    sp = progress.steps["b"]
    assert (sp.total, sp.exact) == (30, True)


def test_a_total_is_final_before_the_last_splits_arrive():
    progress = Progress(enabled=False, graph=graph_of(NestedFlow))
    progress.add_total("start", 1)
    progress.fanned_out("start", 3)
    progress.add_total("a", 3)
    seen = []
    for n in (4, 5, 6):
        progress.fanned_out("a", n)
        b = progress.steps.get("b")
        seen.append(None if b is None else (b.total, b.exact))
        progress.add_total("b", n)
    assert seen == [None, (9, False), (15, True)]
    assert (progress.steps["b"].total, progress.steps["b"].exact) == (15, True)


def test_a_run_tells_its_progress_every_fan_out(tmp_path, monkeypatch):
    """A nested foreach run in this process (no Ray): each step's total, once it reads as
    exact, is already the step's final count."""
    import os

    from rayflow.parameters import resolve_parameters
    from rayflow.runtime.flowfile import load_flow
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    seen: list[tuple[str, int, bool]] = []
    settle = Progress._settle

    def watched(self, sp):
        settle(self, sp)
        seen.append((sp.name, sp.total, sp.exact))

    monkeypatch.setattr(Progress, "_settle", watched)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    loaded = load_flow(os.path.join(root, "examples", "foreach.py"))
    values = resolve_parameters(loaded.cls, {"regions": "3", "shards": "4"})
    loop = RunLoop(loaded, values, RunOptions(datastore_url=str(tmp_path / "ds"),
                                              executor="inline", progress=False))
    assert loop.run().successful
    final = {"start": 1, "region": 3, "shard": 12, "join_shards": 3, "join_regions": 1,
             "end": 1}
    assert {name: (sp.total, sp.exact) for name, sp in loop.progress.steps.items()} == \
        {name: (n, True) for name, n in final.items()}
    wrong = [(name, total) for name, total, exact in seen if exact and total != final[name]]
    assert not wrong, wrong
