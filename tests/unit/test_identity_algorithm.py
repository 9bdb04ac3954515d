"""The identity-resolution example's algorithm, run as plain functions (no Ray, no S3).

On a few thousand generated records with a fixed seed: the job's F1 is above a floor, the
entity table has its schema, a giant block is split into bounded windows, and the same seed
gives the same output. Plus the pieces that are easy to get subtly wrong: Soundex, date
parsing, the window arithmetic, and union-find.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.identity_resolution import algorithm as A
from examples.identity_resolution import generate as G

SEED = 7
RECORDS = 4000
F1_FLOOR = 0.95


@pytest.fixture(scope="module")
def dataset():
    return G.generate(RECORDS, SEED)


@pytest.fixture(scope="module")
def baseline(dataset):
    table, _ = dataset
    return A.single_process_baseline(table, partitions=4, shard_rows=1500)


# -- the job, end to end ---------------------------------------------------------------------
def test_f1_above_floor(dataset, baseline):
    _, truth = dataset
    m = A.pairwise_metrics(baseline.entities, truth)
    assert m["f1"] >= F1_FLOOR, m
    assert m["records"] == RECORDS
    assert baseline.candidates > baseline.matches > 0


def test_entity_table_schema(dataset, baseline):
    table, _ = dataset
    entities = baseline.entities
    assert entities.schema == A.ENTITY_SCHEMA
    ids = entities["record_id"].to_numpy()
    assert np.array_equal(ids, np.sort(table["record_id"].to_numpy()))  # every record, once
    eid = entities["entity_id"].to_numpy()
    assert (eid <= ids).all()  # the entity id is its smallest record id ...
    assert np.isin(eid, ids[eid == ids]).all()  # ... and that record heads its own entity
    sizes = np.bincount(np.searchsorted(ids, eid))
    assert np.array_equal(entities["entity_size"].to_numpy(), sizes[np.searchsorted(ids, eid)])


def test_same_seed_same_output(dataset, baseline, tmp_path):
    table, truth = dataset
    again, truth_again = G.generate(RECORDS, SEED)
    assert again.equals(table) and truth_again.equals(truth)
    assert not G.generate(RECORDS, SEED + 1)[0].equals(table)
    for name in ("a", "b"):
        G.write_dataset(table, truth, str(tmp_path / name), shard_rows=1500)
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    rerun = A.single_process_baseline(again, partitions=4, shard_rows=1500)
    assert rerun.entities.equals(baseline.entities)


def test_partitioning_does_not_change_the_entities(dataset, baseline):
    table, _ = dataset
    other = A.single_process_baseline(table, partitions=7, shard_rows=900)
    assert other.entities.equals(baseline.entities)


def test_dataset_round_trip_through_shards(dataset, tmp_path):
    table, truth = dataset
    G.write_dataset(table, truth, str(tmp_path), shard_rows=1500)
    shards = G.list_shards(str(tmp_path))
    assert len(shards) == 3 and all(s.endswith(".parquet") for s in shards)
    assert pa.concat_tables([G.read_parquet(s) for s in shards]).equals(table)
    assert G.read_truth(str(tmp_path)).equals(truth)
    assert pq.read_schema(tmp_path / "part-00000.parquet").names == table.schema.names
    assert "entity_id" not in table.schema.names  # the job never sees the truth


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate --records"):
        G.list_shards(str(tmp_path))


# -- giant blocks ----------------------------------------------------------------------------
def hot_key_table(n: int = 2000, dupes: int = 20) -> pa.Table:
    """n different people who all give the same phone (a shop's number, say), plus `dupes`
    of them entered twice. Nothing else is shared, so every pair meets only in that block."""
    rng = np.random.default_rng(3)
    first = np.array(list(G.FIRST_NAMES), object)[rng.integers(0, len(G.FIRST_NAMES), n)]
    surnames = G.build_surname_pool()
    last = np.array(surnames, object)[rng.integers(0, len(surnames), n)]
    address = np.array([f"{h} {s} St" for h, s in zip(rng.integers(1, 9999, n),
                                                        rng.choice(G.STREETS, n))], object)
    idx = np.r_[np.arange(n), np.arange(dupes)]
    none = pa.nulls(len(idx), pa.string())
    return pa.table({
        "record_id": pa.array(np.arange(len(idx), dtype=np.int64)),
        "first_name": pa.array(first[idx], pa.string()), "last_name": pa.array(last[idx]),
        "email": none, "phone": pa.array(["(555) 010-0000"] * len(idx)),
        "address": pa.array(address[idx], pa.string()), "city": none, "zip": none, "dob": none,
    })


def test_giant_block_is_split_into_bounded_windows():
    n, max_block = 2000, 100
    table = hot_key_table(n, dupes=20)
    parts = A.gather_partitions([A.prepare_shard(table, 4)])
    giant = A.find_giant_blocks(parts, max_block)
    assert giant.num_rows == 1  # the phone key; nothing else is shared
    hot = next(p for p in parts if p.num_rows)
    rows = A.block_rows(hot, max_block)
    windows, per_window = np.unique(rows.block, return_counts=True)
    assert len(windows) >= n // (max_block // 2) - 1  # several windows, not one block
    assert per_window.max() <= max_block
    result = A.match_partition(hot, giant, max_block=max_block)
    rows_in = table.num_rows
    assert result.candidates <= rows_in * max_block
    assert result.candidates < rows_in * (rows_in - 1) // 2 // 4  # far from all pairs
    entities = A.resolve_entities(table["record_id"].to_numpy(), [result.pairs])
    eid = entities["entity_id"].to_numpy()
    assert (eid[n:] == eid[:20]).all()  # the people entered twice are still found


def test_windows_make_every_near_pair_exactly_once():
    n, max_block = 1000, 64
    rows = A.split_windows(np.full(n, 42, np.uint64), np.arange(n), np.arange(n),
                           np.full(n, n), max_block)
    i, j = A.pairs_within_blocks(rows.block)
    keep = ~(rows.in_overlap[i] & rows.in_overlap[j])
    a, b = rows.row[i[keep]], rows.row[j[keep]]
    pairs = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    assert len(pairs) == keep.sum()  # no pair made twice
    step = max_block // 2
    assert all((x, x + d) in pairs for x in range(n) for d in range(1, step) if x + d < n)
    assert len(pairs) <= n * max_block


def test_small_blocks_are_not_split():
    rows = A.split_windows(np.array([1, 1, 2], np.uint64), np.arange(3), np.array([0, 1, 0]),
                           np.array([2, 2, 1]), 200)
    assert rows.block.tolist() == [1, 1, 2] and not rows.in_overlap.any()


# -- the pieces ------------------------------------------------------------------------------
def test_soundex_matches_the_standard_codes():
    names = ["robert", "rupert", "rubin", "ashcraft", "tymczak", "pfister", "honeyman", "lee",
             "", None]
    codes = A.soundex(pa.array(names, pa.string()))
    expected = ["R163", "R163", "R150", "A261", "T522", "P236", "H555", "L000", None, None]
    for code, want in zip(codes.tolist(), expected):
        assert code == (0 if want is None else (ord(want[0].lower()) - 96) * 1000 + int(want[1:]))


def test_dates_in_every_format_parse_to_the_same_day():
    text = ["1985-03-07", "03/07/1985", "07 Mar 1985", "19850307", "March 7, 1985",
            "7.3.1985", " 1985-3-7 ", "31/12/1985", "not a date", None]
    assert A.parse_dates(pa.array(text)).to_pylist() == [19850307] * 7 + [None] * 3
    # and the generator's own formats all come back
    for style in range(G.DATE_FORMATS):
        assert A.parse_dates(pa.array([G.format_date(1972, 11, 3, style)]))[0].as_py() \
            == 19721103


def test_normalize_makes_variants_equal():
    raw = pa.table({
        "record_id": [1, 2], "first_name": ["Bill", "WILLIAM"], "last_name": ["O'Neil", "oneil"],
        "email": [" Bill.ONeil+shop3@Gmail.com ", "bill.oneil@gmail.com"],
        "phone": ["+1 (415) 555-0123", "415.555.0123"],
        "address": ["12 Oak Street #4", "12 OAK ST. Apt 4"], "city": ["X", "x"],
        "zip": ["94110-1234", "94110"], "dob": ["March 7, 1985", "1985-03-07"],
    })
    norm = A.normalize(raw)
    for column in ("first", "last", "email", "phone", "address", "zip", "dob"):
        a, b = norm[column].to_pylist()
        assert a == b and a is not None, column
    keys = A.blocking_keys(norm)
    assert (keys[0] == keys[1]).all() and (keys != A.MISSING).all()


def test_connected_components_match_a_reference():
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.integers(0, n, 400), rng.integers(0, n, 400)
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in zip(a, b):
        rx, ry = find(x), find(y)
        parent[max(rx, ry)] = min(rx, ry)
    assert A.connected_components(n, a, b).tolist() == [find(x) for x in range(n)]
    assert A.connected_components(3, [], []).tolist() == [0, 1, 2]


def test_pairwise_metrics_by_hand():
    entities = pa.table({"record_id": [1, 2, 3, 4], "entity_id": [1, 1, 1, 4]})
    truth = pa.table({"record_id": [1, 2, 3, 4], "entity_id": [9, 9, 8, 8]})
    m = A.pairwise_metrics(entities, truth)  # predicted 3 pairs, true 2, shared 1
    assert (m["precision"], m["recall"]) == (pytest.approx(1 / 3), 0.5)
    assert m["f1"] == pytest.approx(0.4)


def test_candidate_pairs_are_unique_and_ordered(dataset):
    table, _ = dataset
    for part in A.gather_partitions([A.prepare_shard(table, 3)]):
        left, right = A.candidate_pairs(part, np.zeros(0, np.uint64), 200)
        rid = part["record_id"].to_numpy()
        pairs = list(zip(np.minimum(rid[left], rid[right]), np.maximum(rid[left], rid[right])))
        assert len(pairs) == len(set(pairs)) and all(x != y for x, y in pairs)


def test_flow_graph_lints():
    graph_mod = pytest.importorskip("rayflow.graph")
    from examples.identity_resolution.flow import IdentityResolutionFlow

    graph = graph_mod.FlowGraph.from_class(IdentityResolutionFlow)
    graph_mod.lint(graph)
    assert [node.name for node in graph] == ["start", "prepare", "gather", "split_compare",
                                             "compare", "train", "split_score", "score",
                                             "cluster", "end"]
    assert graph["start"].type == graph["split_compare"].type == "split-foreach"
    assert graph["gather"].type == graph["train"].type == graph["cluster"].type == "join"


def test_generated_vocabulary_grows_with_the_population():
    """Ten times the people live in ten times the regions, with ten times the surnames and
    towns, so a block of surname and zip stays about the same size (fixed name pools made
    every block grow 10x, and 10M records 237M candidate pairs)."""
    rng = np.random.default_rng(1)

    def people(n):
        region = np.arange(n) * G.regions_for(n) // n
        first, last = G.draw_names(rng, region)
        zips = G.random_addresses(rng, region).zip
        _, per_block = np.unique(np.stack([np.unique(last, return_inverse=True)[1].ravel(),
                                           zips]), axis=1, return_counts=True)
        return len(set(last)), per_block.max(), float((per_block ** 2).sum() / n)

    small, big = people(50_000), people(500_000)
    assert big[0] > 6 * small[0]              # distinct surnames
    assert big[2] < 1.5 * small[2]            # the block a person is in, on average
    assert G.region_vocabulary(7)[1][:5].tolist() == G.region_vocabulary(7)[1][:5].tolist()
    assert G.region_city(0, 0) != G.region_city(40, 0)
