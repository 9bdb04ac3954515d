"""Module globals a task changes in place are put back before the next task of a reused
worker (rayflow/runtime/isolation.py), within the limits its docstring states."""

from __future__ import annotations

import random
import threading
import types

from rayflow.runtime.isolation import (
    SNAPSHOT_LIMIT,
    SPLIT_CHECK_LIMIT,
    TaskIsolation,
    isolation_cost_us,
    module_baseline,
)


def _module(**values) -> types.ModuleType:
    module = types.ModuleType("isolation_unit_flow")
    module.__dict__.update(values)
    return module


def test_changes_in_place_are_put_back_before_each_task():
    lock = threading.Lock()
    module = _module(SEEN=[], TABLE={"n": 0}, PAIR=([], 1), LOCK=lock, RNG=random.Random(7),
                     CONST=(1, 2))
    iso = TaskIsolation(module, module_baseline(module))
    draws = []
    for _ in range(3):
        iso.before_task()
        g = module.__dict__
        assert g["SEEN"] == [] and g["TABLE"] == {"n": 0} and g["PAIR"] == ([], 1)
        g["SEEN"].append(1)
        g["TABLE"]["n"] += 1
        g["PAIR"][0].append(1)
        draws.append(g["RNG"].random())
        iso.after_task()
    # A random generator goes on (a fresh process would seed it anew), a lock is left alone.
    assert len(set(draws)) == 3
    assert module.LOCK is lock


def test_big_globals_are_checked_once_per_batch_and_huge_ones_never():
    medium = list(range(SPLIT_CHECK_LIMIT))  # pickled: over the split limit, under the snapshot's
    huge = bytearray(SNAPSHOT_LIMIT + 1)
    module = _module(MEDIUM=medium, HUGE=huge, SMALL=[])
    baseline = module_baseline(module)
    batch = TaskIsolation(module, baseline)
    batch.before_task()
    module.MEDIUM.append("x")
    module.HUGE[0] = 1
    module.SMALL.append("x")
    batch.before_task()  # the next split of the same batch
    assert module.SMALL == [] and module.MEDIUM[-1] == "x" and module.HUGE[0] == 1
    TaskIsolation(module, baseline).before_task()  # the next batch (an ordinary step's task)
    assert module.MEDIUM == medium[:-1] and module.HUGE[0] == 1


def test_a_task_keeps_the_object_it_changed():
    """The changed object itself is never changed back: a task may have handed it on as an
    artifact; the next task gets a new copy."""
    module = _module(SEEN=[])
    iso = TaskIsolation(module, module_baseline(module))
    iso.before_task()
    first = module.SEEN
    first.append(1)
    iso.before_task()
    assert first == [1] and module.SEEN == [] and module.SEEN is not first


def test_the_check_is_cheap_per_task():
    assert isolation_cost_us(tasks=2000) < 200
