"""parallel_map / parallel_imap_unordered (Metaflow's multicore_utils): forked children,
lambdas and closures, results in order, a failing child is one MulticoreException."""

from __future__ import annotations

import os

import pytest

from rayflow import parallel_imap_unordered, parallel_map
from rayflow.multicore_utils import MulticoreException


def test_parallel_map_keeps_order_and_takes_closures(tmp_path):
    offset = 10
    assert parallel_map(lambda x: x * x + offset, range(20), max_parallel=3,
                        dir=str(tmp_path)) == [x * x + offset for x in range(20)]
    assert list(tmp_path.iterdir()) == []  # the result files are removed


def test_each_item_runs_in_a_child_process():
    pids = parallel_map(lambda _: os.getpid(), range(6), max_parallel=2)
    assert os.getpid() not in pids and len(set(pids)) == 6


def test_imap_unordered_yields_every_result():
    assert sorted(parallel_imap_unordered(lambda x: [x] * 3, range(7), max_parallel=4)) == \
        [[x] * 3 for x in range(7)]


def test_a_failing_child_raises_and_the_rest_stop(tmp_path, capfd):
    def work(x):
        if x == 3:
            raise ValueError("bad item 3")
        return x

    with pytest.raises(MulticoreException, match="failed with exit code 1"):
        parallel_map(work, range(8), max_parallel=2, dir=str(tmp_path))
    assert "ValueError: bad item 3" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []
