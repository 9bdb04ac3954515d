"""Identity resolution at scale, without Ray: each candidate pair once in link mode, ids
checked, a truth that names each id's input, and the partitioned connected components equal
to the single-task union-find."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from examples.identity_resolution import algorithm as alg
from examples.identity_resolution import components as cc
from examples.identity_resolution import generate
from examples.identity_resolution import model as er
from examples.identity_resolution.settings import (
    SettingsError,
    check_inputs,
    parse_settings,
    repeated_rows,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEOPLE = os.path.join(ROOT, "examples", "identity_resolution", "settings_files", "people.yaml")


def link_settings(max_block: int = 3, extra: str = "", link_type: str = "link"):
    text = open(PEOPLE).read().replace("link_type: dedupe", f"link_type: {link_type}")
    return parse_settings(text + f"\nmax_block: {max_block}\n{extra}")


def febrl4_like(records: int = 3000, seed: int = 5):
    """Two inputs in the manner of FEBRL4: each person's records split over both, and the
    two inputs number their records 0, 1, 2, ... alike, so every id appears in both. The
    truth says which input each id is from (its source column)."""
    table, truth = generate.generate(records, seed)
    entity = dict(zip(truth.column(0).to_pylist(), truth.column(1).to_pylist()))
    side = np.arange(table.num_rows) % 2
    inputs, rows = [], []
    for s in (0, 1):
        t = table.filter(pa.array(side == s))
        old = t["record_id"].to_pylist()
        t = t.set_column(0, "record_id", pa.array(np.arange(t.num_rows, dtype=np.int64)))
        inputs.append(t)
        rows += [(s, i, entity[o]) for i, o in enumerate(old)]
    truth = pa.table({"source": [r[0] for r in rows], "id": [r[1] for r in rows],
                      "entity": [r[2] for r in rows]})
    return inputs, truth


def all_pairs(result) -> pa.Table:
    return pa.concat_tables([t.select(["__rid_l", "__rid_r", "source_l", "source_r"])
                             for t in result["scored"]])


def test_link_mode_makes_each_pair_once_in_one_order():
    """Small blocks (max_block 3) make many giant blocks cut into windows, where two rules
    could each make the same pair in different partitions: each pair still comes once, left
    from the first input, and the blocking report counts distinct pairs."""
    inputs, truth = febrl4_like()
    settings = link_settings()
    result = er.resolve_in_process(inputs, settings, truth, partitions=4, shard_rows=700)
    pairs = all_pairs(result)
    left, right = pairs["__rid_l"].to_numpy(), pairs["__rid_r"].to_numpy()
    assert len(left) > 1000
    assert (left < right).all()
    assert pc.all(pc.less(pairs["source_l"], pairs["source_r"])).as_py()
    unordered = np.unique(np.stack([np.minimum(left, right), np.maximum(left, right)]), axis=1)
    assert unordered.shape[1] == len(left), "a pair came twice (maybe reversed)"
    assert result["candidates"] == len(left)


def test_link_mode_blocking_report_counts_distinct_pairs():
    inputs, truth = febrl4_like()
    settings = link_settings()
    shards = []
    for s, t in enumerate(inputs):
        mine = er.truth_of_source(truth, s)
        shards.append(er.prepare_shard(t, settings, s, s, 3, 500, mine, 0, 2))
    giant = er.giant_blocks([sh.block_counts for sh in shards], settings.max_block)
    assert len(giant), "the test needs giant blocks"
    tf = er.term_frequencies([sh.tf_counts for sh in shards], settings)
    sample = pa.concat_tables([sh.sample for sh in shards])
    parts = [er.compare_partition(pa.concat_tables([sh.pieces[p] for sh in shards]), giant,
                                  settings, tf, sample, 1000, p) for p in range(3)]
    same = np.concatenate([c.pairs["__truth_same"].to_numpy() for c in parts])
    true_pairs = er.true_pair_count([sh.truth_counts for sh in shards], "link")
    assert sum(c.rule_pairs.sum() for c in parts) == len(same)
    assert sum(c.rule_true.sum() for c in parts) == same.sum() <= true_pairs


def test_truth_with_a_source_column_scores_ids_that_repeat_across_inputs():
    inputs, truth = febrl4_like()
    # link_and_dedupe: a person's two records in one input are a pair too, as in the truth.
    result = er.resolve_in_process(inputs, link_settings(200, link_type="link_and_dedupe"),
                                   truth, partitions=4)
    clusters = result["clusters"]
    # The labels came from (input, id), not from the id alone.
    want = {(s, i): e for s, i, e in zip(*(truth[c].to_pylist() for c in truth.column_names))}
    got = zip(clusters["source"].to_pylist(), clusters["id"].to_pylist(),
              clusters[er.TRUTH].to_pylist())
    entity_codes = {}
    for s, i, label in got:  # one label per true entity, whatever its encoding
        assert entity_codes.setdefault(want[(s, i)], label) == label
    # F1 by hand, over (input, id) keys.
    pred = {}
    for s, i, c in zip(*(clusters[c].to_pylist() for c in ("source", "id", "cluster_id"))):
        pred[(s, i)] = c
    keys = list(want)
    both = predicted = actual = 0
    from collections import Counter
    pc_, tc, jc = Counter(pred[k] for k in keys), Counter(want[k] for k in keys), Counter(
        (pred[k], want[k]) for k in keys)
    predicted = sum(n * (n - 1) // 2 for n in pc_.values())
    actual = sum(n * (n - 1) // 2 for n in tc.values())
    both = sum(n * (n - 1) // 2 for n in jc.values())
    expected = cc.scores(actual, predicted, both)
    assert result["metrics"]["f1"] == pytest.approx(expected["f1"], abs=1e-12)
    assert expected["f1"] > 0.9, expected


def _write_input(folder, tables):
    os.makedirs(folder, exist_ok=True)
    for i, t in enumerate(tables):
        pq.write_table(t, os.path.join(folder, f"part-{i:05d}.parquet"))
    return str(folder)


def test_reused_ids_are_refused_naming_the_input_the_column_and_the_ids(tmp_path):
    table, _ = generate.generate(2000, seed=2)
    first, second = table.slice(0, 1000), table.slice(1000)
    # Ten of the second file's ids repeat ids of the first: a reused id across files.
    ids = second["record_id"].to_numpy().copy()
    ids[:10] = first["record_id"].to_numpy()[100:110]
    second = second.set_column(0, "record_id", pa.array(ids))
    folder = _write_input(tmp_path / "people", [first, second])
    settings = parse_settings(open(PEOPLE).read())
    with pytest.raises(SettingsError) as err:
        check_inputs(settings, [folder])
    message = str(err.value)
    assert f"Input {folder!r}: column 'record_id'" in message
    assert "repeats 10 ids" in message and "duplicate_ids: keep_first" in message
    for rid in first["record_id"].to_pylist()[100:105]:
        assert repr(rid) in message
    # With keep_first the check lets it through, and exactly the later copies are dropped.
    keeping = parse_settings(open(PEOPLE).read() + "\nduplicate_ids: keep_first\n")
    files = check_inputs(keeping, [folder])[0]
    drops = repeated_rows(files, "record_id")
    assert len(drops[0]) == 0 and drops[1].tolist() == list(range(10))


def test_keep_first_leaves_each_id_once_in_the_clusters():
    table, _ = generate.generate(1500, seed=4)
    ids = table["record_id"].to_numpy().copy()
    ids[1000:1020] = ids[0:20]
    table = table.set_column(0, "record_id", pa.array(ids))
    settings = parse_settings(open(PEOPLE).read() + "\nduplicate_ids: keep_first\n")
    drop = np.flatnonzero(pd_duplicated(ids))
    shard = er.prepare_shard(table, settings, 0, 0, 2, 100, drop_rows=drop)
    assert shard.records == 1480
    assert pc.count_distinct(shard.ids["id"]).as_py() == 1480


def pd_duplicated(values: np.ndarray) -> np.ndarray:
    _, first = np.unique(values, return_index=True)
    out = np.ones(len(values), bool)
    out[first] = False
    return out


@pytest.mark.parametrize("k", [1, 3, 7])
def test_partitioned_components_equal_the_single_task_union_find(k):
    rng = np.random.default_rng(k)
    for trial in range(12):
        n = int(rng.integers(2, 2500))
        ids = np.sort(rng.choice(2**40, n, replace=False)).astype(np.int64)
        if trial % 3 == 0:  # one long chain in random order: many rounds
            a = rng.permutation(n - 1)
            b = a + 1
        else:
            m = int(rng.integers(0, 3 * n))
            a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        want = ids[alg.connected_components(n, a, b)]
        labels, _ = cc.labels_in_process(ids[a], ids[b], k)
        got = ids.copy()
        for piece in labels:
            got[np.searchsorted(ids, piece[0])] = piece[1]
        assert np.array_equal(got, want), (k, trial)


def partitioned_clusters(result, settings, k: int = 4, shard_rows: int = 1300):
    """The cluster stage as the flow runs it, without Ray: labels by the partitioned rounds
    over the matched pairs, the records joined to them and sizes counted per label
    partition. Returns (clusters, summed counts)."""
    edges = pa.concat_tables([t.filter(pc.greater_equal(t["match_probability"],
                                                        settings.threshold))
                              for t in result["scored"]])
    ids = result["clusters"].select([er.RID, "source", "id", er.TRUTH]).rename_columns(
        [er.RID, er.SOURCE, "id", er.TRUTH])
    labels, _ = cc.labels_in_process(edges["__rid_l"].to_numpy(), edges["__rid_r"].to_numpy(),
                                     k)
    shards = [ids.slice(i, shard_rows) for i in range(0, ids.num_rows, shard_rows)]
    per_q = [[cc.route_table(s, s[er.RID].to_numpy(), k)[q] for s in shards] for q in range(k)]
    routed = [cc.label_records(labels[q], k, *per_q[q]) for q in range(k)]
    finals = [cc.finish_clusters(*[routed[s][q] for s in range(k)]) for q in range(k)]
    counts = {key: sum(f[1][key] for f in finals) for key in finals[0][1]}
    return pa.concat_tables([f[0] for f in finals]), counts


def assert_same_clusters(result, settings, k: int = 4) -> None:
    """The partitioned clusters and their F1 equal the single-task union-find's, bit for
    bit."""
    single = result["clusters"]
    got, counts = partitioned_clusters(result, settings, k)
    cols = ["source", "id", "cluster_id", "cluster_size"]
    order = [("source", "ascending"), ("id", "ascending")]
    assert got.select(cols).sort_by(order).equals(single.select(cols).sort_by(order))
    assert counts["clusters"] == pc.count_distinct(single["cluster_id"]).as_py()
    metrics = er.metrics(single)
    if metrics:
        assert cc.scores(metrics["true_pairs"], counts["predicted_pairs"],
                         counts["both_pairs"])["f1"] == metrics["f1"]


def test_partitioned_clusters_equal_the_single_task_result_on_generated_data():
    """The whole cluster stage (labels, the records' join, sizes, metric counts) against
    model.cluster and model.metrics, on the matched pairs of a real run."""
    table, truth = generate.generate(5000, seed=9)
    settings = parse_settings(open(PEOPLE).read())
    result = er.resolve_in_process([table], settings, truth, partitions=4, shard_rows=1200)
    assert_same_clusters(result, settings)


def described_pairs(inputs, settings) -> set:
    """Brute force: every pair of records (internal ids of one shard per input) that agrees
    on every key of at least one blocking rule; across inputs only in link mode."""
    rid, src, keys = [], [], []
    for s, t in enumerate(inputs):
        rid.append((np.int64(s) << np.int64(32)) + np.arange(t.num_rows, dtype=np.int64))
        src.append(np.full(t.num_rows, s))
        keys.append(er.rule_keys(er.normalize(t, settings), settings, t.num_rows))
    rid, src, keys = np.concatenate(rid), np.concatenate(src), np.concatenate(keys)
    out = set()
    for r in range(keys.shape[1]):
        groups = {}
        for i in np.flatnonzero(keys[:, r] != er.MISSING):
            groups.setdefault(keys[i, r], []).append(i)
        for members in groups.values():
            for x, i in enumerate(members):
                for j in members[x + 1:]:
                    if settings.link_type != "link" or src[i] != src[j]:
                        out.add((min(rid[i], rid[j]), max(rid[i], rid[j])))
    return out


@pytest.mark.parametrize("link_type", ["dedupe", "link", "link_and_dedupe"])
@pytest.mark.parametrize("max_block", [4, "none"])
def test_candidates_are_the_pairs_the_rules_describe(link_type, max_block):
    """Against brute force: with `max_block: none` the candidates are exactly the pairs the
    blocking rules describe, each once, in canonical order; with blocks cut into windows
    they are a subset, and the report counts exactly the pairs the cut left out."""
    if link_type == "dedupe":
        inputs = [generate.generate(1200, seed=3)[0]]
    else:
        inputs, _ = febrl4_like(1200, seed=3)
    settings = link_settings(max_block, link_type=link_type)
    result = er.resolve_in_process(inputs, settings, partitions=3, shard_rows=10**6)
    pairs = all_pairs(result)
    left, right = pairs["__rid_l"].to_numpy(), pairs["__rid_r"].to_numpy()
    got = set(zip(left.tolist(), right.tolist()))
    assert len(got) == len(left), "a pair came twice"
    assert (left < right).all(), "a pair not in canonical order"
    if link_type == "link":
        assert (pairs["source_l"].to_numpy() < pairs["source_r"].to_numpy()).all()
    want = described_pairs(inputs, settings)
    cut = int(result["rule_cut"].sum())
    assert got <= want, "a pair no rule describes"
    if max_block == "none":
        assert got == want and cut == 0
    else:
        assert cut > 0, "the test needs pairs the windows leave out"
        assert len(want) - len(got) == cut


def test_giant_blocks_by_group_equal_the_whole_merge_and_hold_one_group_each():
    """The gather step finds giant blocks in groups (block hash mod G), each merging only its
    group's counts of every shard: the same blocks as one merge of all counts, including a
    block with a single row in each of max_block + 1 shards, which no shard sees as big."""
    max_block, shards = 20, 30
    rng = np.random.default_rng(3)
    spread = np.uint64(2**40 + 7)  # one row in every shard: 30 rows in all, giant
    counts = []
    for _ in range(shards):
        blocks = rng.integers(1, 2**62, 4000, dtype=np.int64).view(np.uint64)
        hot = np.full(int(rng.integers(0, 3)), np.uint64(99))  # 0-2 rows a shard, ~30 in all
        counts.append(er.count_blocks(np.concatenate([blocks, blocks[:50], hot, [spread]])))
    whole = er.giant_blocks(counts, max_block)
    assert spread in whole and np.uint64(99) in whole
    for groups in (1, 3, 7):
        pieces = [er.block_groups(c, groups) for c in counts]
        per_group = [er.giant_blocks([p[g] for p in pieces], max_block) for g in range(groups)]
        assert np.array_equal(np.sort(np.concatenate(per_group)), whole)
        held = [sum(p[g].num_rows for p in pieces) for g in range(groups)]
        assert max(held) < 1.2 * sum(c.num_rows for c in counts) / groups
    rows = er.GROUP_ROWS
    assert er.block_group_count(10 * rows) == 10 == er.block_group_count(10.4 * rows)


def test_gather_by_groups_gives_the_whole_merge():
    """Giant blocks, term frequencies and true pair counts merged group by group (the gather
    step's Ray tasks) equal the ones merged from every shard at once."""
    settings = link_settings(max_block=4, link_type="dedupe")
    table, truth = generate.generate(4000, seed=6)
    shards = [er.prepare_shard(table.slice(i, 1000), settings, 0, i // 1000, 3, 100, truth,
                               0, 4) for i in range(0, 4000, 1000)]
    whole_tf = er.term_frequencies([sh.tf_counts for sh in shards], settings)
    whole_giant = er.giant_blocks([sh.block_counts for sh in shards], settings.max_block)
    truths = [sh.truth_counts for sh in shards]
    assert len(whole_giant)
    for groups in (1, 5):
        cut = [(er.block_groups(sh.block_counts, groups), er.tf_groups(sh.tf_counts, groups),
                er.truth_groups(sh.truth_counts, groups)) for sh in shards]
        found = [er.gather_group(settings.max_block, "dedupe", len(shards),
                                 *[c[0][g] for c in cut], *[c[1][g] for c in cut],
                                 *[c[2][g] for c in cut]) for g in range(groups)]
        assert np.array_equal(np.sort(np.concatenate([f[0] for f in found])), whole_giant)
        assert sum(f[2] for f in found) == er.true_pair_count(truths, "dedupe")
        assert sum(f[3] for f in found) == er.true_pair_count(truths, "dedupe", by_entity=True)
        tf = er.tf_finish([f[1] for f in found], settings)
        for column, expected in whole_tf.items():
            got = tf[column].sort_by("value")
            assert got.equals(expected.sort_by("value"))
            assert pc.min(got["tf"]).as_py() * 2 <= pc.max(got["tf"]).as_py()


def test_a_shards_truth_is_read_by_range_and_ids(tmp_path):
    """A shard's task reads the truth rows of its ids: the scan's range lets it skip the
    other row groups of a large truth, and still finds ids of any order and type."""
    from examples.identity_resolution.flow import _read_truth

    path = str(tmp_path / "truth.parquet")
    ids = np.arange(10_000, dtype=np.int64)
    pq.write_table(pa.table({"record_id": ids, "entity_id": ids // 3}), path,
                   row_group_size=1000)
    wanted = pa.array([4200, 4001, 4999, 77, 123456], pa.int64())
    got = _read_truth(path, wanted).sort_by("record_id")
    assert got["record_id"].to_pylist() == [77, 4001, 4200, 4999]
    assert got["entity_id"].to_pylist() == [25, 1333, 1400, 1666]
    assert _read_truth(path, pa.array(["5", "9999"])).num_rows == 2  # text ids, int truth
    assert _read_truth(path, pa.nulls(3, pa.int64())).num_rows == 0
