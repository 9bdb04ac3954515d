"""The configured identity-resolution model: normalize, block, compare, learn, score, cluster.

Everything here follows a `Settings` (settings.py) and works on Arrow tables and numpy arrays;
nothing imports Ray. The flow calls one function per step:

1. ``prepare_shard``: one input shard -> normalized fields, a dense internal id per record
   (``__rid``), one row per (record, blocking rule) in the partition its block hashes to, and
   the shard's contributions to the global tables: value counts for term frequencies, block
   sizes (to find giant blocks), a random sample of records (for u) and truth counts.
2. ``compare_partition``: one partition's candidate pairs (every rule, each pair once, giant
   blocks cut into sorted windows), their comparison vector (gamma, one small int per
   comparison), the counts of each distinct vector (what EM needs), and u counts from random
   pairs of the sample, and per rule the pairs its cut blocks describe that the windows left
   out.
3. ``train``: u from the random pairs; m and the share of matches by expectation maximisation
   over the distinct comparison vectors of all blocked pairs (exact: EM over counted patterns
   is EM over the pairs).
4. ``score_pairs``: Fellegi-Sunter match weight (with term-frequency adjustment of exact
   agreements) and match probability of each pair, with each field's contribution.
5. ``cluster``: connected components over the pairs at or above the threshold.

Gamma values: 0 is the strongest level ("exact"), increasing to the last, "else"; -1 means
that either side is null, which says nothing either way.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

try:
    from examples.identity_resolution import algorithm as alg
    from examples.identity_resolution.settings import Settings, parse_settings
except ImportError:  # loaded with this folder on sys.path
    import algorithm as alg
    from settings import Settings, parse_settings

MISSING = alg.MISSING
RID, SOURCE, BLOCK, RULE, TRUTH = "__rid", "__source", "__block", "__rule", "__truth"
ID = "__id"
NO_TRUTH = -1


def _chunk(arr):
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _null_empty(arr):
    return pc.if_else(pc.equal(pc.utf8_length(arr), 0), pa.scalar(None, arr.type), arr)


def _as_text(col) -> pa.Array:
    col = _chunk(col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pc.cast(col, pa.string())
    return col.cast(pa.string())


def normalize_text(col) -> pa.Array:
    """Trimmed, lower case, inner runs of spaces as one; "" becomes null."""
    text = pc.utf8_lower(_as_text(col))
    text = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))
    return _null_empty(text)


def normalize_name(col, nicknames: bool) -> pa.Array:
    names = _null_empty(pc.replace_substring_regex(pc.utf8_lower(_as_text(col)), r"[^a-z]", ""))
    if nicknames:
        keys = pa.array(list(alg.NICKNAMES))
        mapped = pc.take(pa.array(list(alg.NICKNAMES.values())),
                         pc.index_in(names, value_set=keys))
        names = pc.coalesce(mapped, names)
    return names


def normalize_dates(col) -> pa.Array:
    """Any date form -> int32 yyyymmdd (null when it is not a date)."""
    col = _chunk(col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_timestamp(col.type) or pa.types.is_date64(col.type):
        col = pc.cast(col, pa.date32())
    if pa.types.is_date32(col.type):
        y, m, d = pc.year(col), pc.month(col), pc.day(col)
        return pc.cast(pc.add(pc.add(pc.multiply(y, 10_000), pc.multiply(m, 100)), d),
                       pa.int32())
    return alg.parse_dates(_as_text(col))


def date_days(yyyymmdd: np.ndarray) -> np.ndarray:
    """yyyymmdd ints (negative = missing) -> days since 1970 as int64 (missing stays < -10**8)."""
    v = np.asarray(yyyymmdd, np.int64)
    y, m, d = v // 10_000, v // 100 % 100, v % 100
    months = (y - 1970) * 12 + (m - 1)
    days = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + d - 1
    return np.where(v > 0, days, -(10**9))


def normalize_numbers(col) -> pa.Array:
    col = _chunk(col)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.utf8_trim_whitespace(col)
        ok = pc.match_substring_regex(text, r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
        col = pc.if_else(ok, text, None)
    return pc.cast(col, pa.float64())


def normalize_column(comp, col) -> pa.Array:
    """The form a comparison compares: names letters only, emails without +tags, phones as
    digits, postcodes without spaces, dates as yyyymmdd, numbers as float64."""
    kind = comp.kind
    if kind == "date":
        return normalize_dates(col)
    if kind == "numeric":
        return normalize_numbers(col)
    if kind in ("name", "phonetic"):
        return normalize_name(col, comp.nicknames)
    text = normalize_text(col)
    if comp.nicknames:
        text = normalize_name(text, True)
    if kind == "email":
        return _null_empty(pc.replace_substring_regex(text, r"\+[^@]*@", "@"))
    if kind == "phone":
        digits = pc.replace_substring_regex(text, r"[^0-9]", "")
        return pc.if_else(pc.greater_equal(pc.utf8_length(digits), 7),
                          pc.utf8_slice_codeunits(digits, start=-10), pa.scalar(None, pa.string()))
    if kind == "postcode":
        return _null_empty(pc.replace_substring_regex(text, r"[^a-z0-9]", ""))
    return text


def normalize(table: pa.Table, settings: Settings) -> dict[str, pa.Array]:
    """Every column the settings read, in its compared form (blocking-only columns as text)."""
    out = {}
    for comp in settings.comparisons:
        out[comp.column] = normalize_column(comp, table[comp.column])
    for column in settings.columns:
        if column not in out:
            out[column] = normalize_text(table[column])
    return out


# --------------------------------------------------------------------------------------------
# Blocking


def _hash_values(values: pa.Array) -> np.ndarray:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return alg.hash_strings(values, width=48)
    if pa.types.is_floating(values.type):
        raw = pc.fill_null(values, np.nan).to_numpy(zero_copy_only=False)
        h = alg.mix64(raw.view(np.uint64) ^ np.uint64(0x5555))
        return np.where(np.isnan(raw), MISSING, np.maximum(h, np.uint64(1)))
    raw = pc.fill_null(values, -(2**62)).to_numpy(zero_copy_only=False).astype(np.int64)
    h = np.maximum(alg.mix64(raw.view(np.uint64) ^ np.uint64(0xAAAA)), np.uint64(1))
    return np.where(raw == -(2**62), MISSING, h)


def key_values(key, norm: dict) -> np.ndarray:
    """One blocking key of every record as a uint64 hash (MISSING when it has none)."""
    values = norm[key.column]
    f = key.function
    if f == "soundex":
        letters = pc.replace_substring_regex(pc.utf8_lower(_as_text(values)), r"[^a-z]", "")
        code = alg.soundex(letters).astype(np.uint64)
        return np.where(code > 0, alg.mix64(code ^ np.uint64(0x7777)), MISSING)
    if f in ("prefix", "suffix"):
        text = _as_text(values)
        cut = (pc.utf8_slice_codeunits(text, 0, key.arg) if f == "prefix"
               else pc.utf8_slice_codeunits(text, start=-key.arg))
        return _hash_values(_null_empty(cut))
    if f in ("year", "month"):
        v = pc.fill_null(values, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        part = v // 10_000 if f == "year" else v // 100
        return np.where(v > 0, np.maximum(alg.mix64(part.astype(np.uint64)), np.uint64(1)),
                        MISSING)
    return _hash_values(_chunk(values))


def rule_keys(norm: dict, settings: Settings, n: int) -> np.ndarray:
    """(n, rules) uint64: each rule's block of each record, MISSING where a key is missing."""
    out = np.zeros((n, len(settings.blocking)), np.uint64)
    for r, rule in enumerate(settings.blocking):
        h = alg.mix64(np.full(n, r + 1, np.uint64))
        missing = np.zeros(n, bool)
        with np.errstate(over="ignore"):
            for key in rule:
                k = key_values(key, norm)
                missing |= k == MISSING
                h = alg.mix64(h * np.uint64(0x100000001B3) ^ k)
        out[:, r] = np.where(missing, MISSING, np.maximum(h, np.uint64(1)))
    return out


# --------------------------------------------------------------------------------------------
# The map side: one shard

GROUP_ROWS = 1_500_000  # (record, rule) rows whose block counts one giant-block task merges


@dataclass
class PreparedShard:
    pieces: list          # one Arrow table per partition (slices of one table)
    ids: pa.Table         # __rid, __source, id (the input's own ids), __truth
    tf_counts: dict       # column -> table(value, count)
    block_counts: pa.Table  # block, count (every rule's blocks)
    sample: pa.Table      # a random sample of the normalized records
    truth_counts: pa.Table | None  # (truth, source, count) when truth is known
    records: int


def prepare_shard(table: pa.Table, settings: Settings, source: int, shard: int,
                  partitions: int, sample_size: int, truth: pa.Table | None = None,
                  seed: int = 0, n_shards: int = 1, drop_rows=None,
                  id_type: pa.DataType | None = None) -> PreparedShard:
    """Raw records of one shard -> partition pieces and the shard's global contributions.

    `truth`, when given, is (id, entity) of the evaluation: its labels ride along as
    `__truth` for the blocking report and the metrics; nothing uses them to match.
    `drop_rows` are rows left out (an id's later records, with duplicate_ids: keep_first);
    the others keep their row number in the internal id. Each row carries the record's own
    id (`__id`, as `id_type` when given) so pairs name their records without a lookup."""
    rows_kept = np.arange(table.num_rows, dtype=np.int64)
    if drop_rows is not None and len(drop_rows):
        rows_kept = np.setdiff1d(rows_kept, np.asarray(drop_rows, np.int64))
        table = table.take(pa.array(rows_kept))
    n = table.num_rows
    norm = normalize(table, settings)
    rid = (np.int64(shard) << np.int64(32)) + rows_kept
    own_id = _chunk(table[settings.unique_id]) if settings.unique_id else pa.array(rid)
    if id_type is not None and own_id.type != id_type:
        own_id = _as_text(own_id) if pa.types.is_string(id_type) else own_id.cast(id_type)
    cols = {RID: pa.array(rid), SOURCE: pa.array(np.full(n, source, np.int8)), ID: own_id}
    cols.update(norm)
    labels = np.full(n, NO_TRUTH, np.int64)
    if truth is not None and settings.unique_id:
        labels = truth_labels(table[settings.unique_id], truth)
    cols[TRUTH] = pa.array(labels)
    narrow = pa.table(cols)
    keys = rule_keys(norm, settings, n)
    row, rule = np.nonzero(keys != MISSING)
    block = keys[row, rule]
    part_of = block % np.uint64(partitions)
    order = np.argsort(part_of, kind="stable")
    bounds = np.searchsorted(part_of[order], np.arange(partitions + 1, dtype=np.uint64))
    row, rule, block = row[order], rule[order].astype(np.int8), block[order]
    # One take of every row in partition order, then a slice a partition: the work does not
    # grow with the number of partitions. (The flow writes the slices to Parquet, which
    # writes a slice's rows only; nothing pickles them.)
    ordered = narrow.take(pa.array(row))
    ordered = ordered.append_column(BLOCK, pa.array(block))
    ordered = ordered.append_column(RULE, pa.array(rule))
    for r in range(len(settings.blocking)):  # every rule's key: dedupe and training
        ordered = ordered.append_column(f"__key_{r}", pa.array(keys[row, r]))
    ordered = ordered.combine_chunks()
    pieces = [ordered.slice(bounds[p], bounds[p + 1] - bounds[p]) for p in range(partitions)]
    ids = pa.table({RID: cols[RID], SOURCE: cols[SOURCE], "id": own_id, TRUTH: cols[TRUTH]})
    tf_counts = {}
    for comp in settings.comparisons:
        if comp.term_frequency:
            vc = pc.value_counts(pc.drop_null(norm[comp.column]))
            tf_counts[comp.column] = pa.table({"value": vc.field("values"),
                                               "count": pc.cast(vc.field("counts"), pa.int64())})
    block_counts = count_blocks(block)
    rng = np.random.default_rng([seed, shard])
    take = np.sort(rng.choice(n, size=min(n, sample_size), replace=False)) if n else []
    sample = narrow.drop_columns([ID]).take(pa.array(np.asarray(take, np.int64)))
    truth_counts = None
    if (labels != NO_TRUTH).any():
        code = labels * 256 + source
        vals, counts = np.unique(code[labels != NO_TRUTH], return_counts=True)
        truth_counts = pa.table({"code": vals, "count": counts.astype(np.int64)})
    return PreparedShard(pieces, ids, tf_counts, block_counts, sample, truth_counts, n)


def truth_of_source(truth: pa.Table, source: int, names=()) -> pa.Table:
    """The (id, entity) rows of one input. A truth with a column named `source` says which
    input each id is from (the settings' source_names, or 0, 1, ... in input order), so ids
    may repeat across inputs; without one, its first two columns are id and entity."""
    if "source" not in truth.column_names:
        return truth.select([0, 1]) if truth.num_columns > 2 else truth
    rest = [c for c in truth.column_names if c != "source"]
    want = [str(source)] + ([str(names[source])] if source < len(names) else [])
    mine = pc.is_in(_as_text(truth["source"]), value_set=pa.array(want))
    return truth.filter(mine).select(rest[:2])


def truth_labels(ids, truth: pa.Table) -> np.ndarray:
    """The truth's entity label (int64) of each id; NO_TRUTH for ids the truth lacks."""
    key = _as_text(ids)
    tid = _as_text(truth.column(0))
    ent = truth.column(1)
    if not pa.types.is_integer(ent.type):
        ent = pa.array(alg.hash_strings(_as_text(ent), width=64).view(np.int64) & (2**50 - 1))
    pos = pc.index_in(key, value_set=tid)
    got = pc.take(_chunk(ent).cast(pa.int64()), pos)
    return pc.fill_null(got, NO_TRUTH).to_numpy(zero_copy_only=False).astype(np.int64)


def merge_counts(tables: list, key: str) -> pa.Table:
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return pa.table({key: pa.array([], pa.uint64()), "count": pa.array([], pa.int64())})
    whole = pa.concat_tables(tables)
    return whole.group_by(key).aggregate([("count", "sum")]).rename_columns([key, "count"])


def term_frequencies(shard_counts: list[dict], settings: Settings) -> dict:
    """column -> table(value, tf): the share of the column's non-null values that are value,
    for the values two records or more share (only those can agree exactly in a pair)."""
    return tf_finish([tf_merge(shard_counts)], settings)


def tf_merge(shard_counts: list[dict]) -> dict:
    """column -> (table(value, count) of the values seen twice or more, count of all
    values): the shards' counts of one group of values, or of all."""
    out = {}
    for column in sorted({c for counts in shard_counts for c in counts}):
        merged = merge_counts([c[column].rename_columns(["value", "count"])
                               for c in shard_counts if column in c], "value")
        total = int(pc.sum(merged["count"]).as_py() or 0)
        out[column] = (merged.filter(pc.greater_equal(merged["count"], 2)), total)
    return out


def tf_finish(merged: list[dict], settings: Settings) -> dict:
    """The term-frequency tables from tf_merge's groups."""
    out = {}
    for comp in settings.comparisons:
        parts = [m[comp.column] for m in merged if comp.column in m]
        if not comp.term_frequency or not parts:
            continue
        total = max(sum(t for _, t in parts), 1)
        counts = pa.concat_tables([t for t, _ in parts])
        out[comp.column] = pa.table({"value": counts["value"], "tf": pc.divide(
            pc.cast(counts["count"], pa.float64()), total)})
    return out


def tf_groups(tf_counts: dict, groups: int) -> list[dict]:
    """A shard's term-frequency counts cut by the hash of the value into `groups`."""
    out: list[dict] = [{} for _ in range(groups)]
    for column, table in tf_counts.items():
        g = _hash_values(_chunk(table.column(0))) % np.uint64(groups)
        order = np.argsort(g, kind="stable")
        bounds = np.searchsorted(g[order], np.arange(groups + 1, dtype=np.uint64))
        for q, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            out[q][column] = table.take(pa.array(order[lo:hi]))
    return out


def count_blocks(block: np.ndarray) -> pa.Table:
    """(block, count) of one shard's rows: every block however small, since a block may
    have one row in each of many shards."""
    values, counts = np.unique(block, return_counts=True)
    return pa.table({"block": values, "count": counts.astype(np.int32)})


def block_groups(counts: pa.Table, groups: int) -> list[pa.Table]:
    """A shard's block counts cut by block % groups: group g of every shard holds all the
    counts of its blocks, so each group finds its giant blocks alone (giant_blocks)."""
    block = counts["block"].to_numpy()
    g = block % np.uint64(groups)
    order = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[order], np.arange(groups + 1, dtype=np.uint64))
    return [counts.take(pa.array(order[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]


def giant_blocks(block_counts: list, max_block: int) -> np.ndarray:
    """The blocks with more than max_block rows over all the counts given (one group's, or
    all), sorted."""
    tables = [t for t in block_counts if t is not None and t.num_rows]
    if not tables:
        return np.zeros(0, np.uint64)
    block = np.concatenate([t["block"].to_numpy() for t in tables])
    count = np.concatenate([t["count"].to_numpy() for t in tables]).astype(np.int64)
    values, where = np.unique(block, return_inverse=True)
    total = np.bincount(where.reshape(-1), weights=count, minlength=len(values))
    return values[total > max_block].astype(np.uint64)


def gather_group(max_block: int, link_type: str, shards: int, *pieces) -> tuple:
    """One group's giant blocks, term-frequency counts and true pair counts (the link
    type's, and every pair of one entity's records), from its pieces of every shard's
    block counts, tf counts and truth counts (`shards` pieces of each): a Ray task."""
    blocks, tfs, truth = pieces[:shards], pieces[shards:2 * shards], pieces[2 * shards:]
    return (giant_blocks(list(blocks), max_block), tf_merge(list(tfs)),
            true_pair_count(list(truth), link_type),
            true_pair_count(list(truth), "dedupe", by_entity=True))


def truth_groups(truth_counts: pa.Table | None, groups: int) -> list:
    """A shard's truth counts cut by the hash of the entity (code // 256), so that all of
    an entity's counts meet in one group."""
    if truth_counts is None:
        return [None] * groups
    entity = truth_counts["code"].to_numpy() // 256
    g = alg.mix64(entity.astype(np.int64).view(np.uint64)) % np.uint64(groups)
    order = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[order], np.arange(groups + 1, dtype=np.uint64))
    return [truth_counts.take(pa.array(order[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]


def block_group_count(rows: int) -> int:
    """Groups the giant-block count is cut into: one per GROUP_ROWS (record, rule) rows, so
    that each merges about the same number of counts whatever the data's size."""
    return max(1, round(rows / GROUP_ROWS))


def true_pair_count(truth_counts: list, link_type: str, by_entity: bool = False) -> int:
    """Pairs of records of one true entity that the link type would compare; with
    `by_entity`, every pair of one entity's records, whatever their inputs (the metrics')."""
    tables = [t for t in truth_counts if t is not None]
    if not tables:
        return 0
    merged = merge_counts(tables, "code")
    code, count = merged["code"].to_numpy(), merged["count"].to_numpy()
    entity = code // 256  # the code is entity * 256 + source
    if link_type == "dedupe" and not by_entity:
        return int((count * (count - 1) // 2).sum())
    _, ent = np.unique(entity, return_inverse=True)
    total = np.bincount(ent, weights=count).astype(np.int64)
    within = np.bincount(ent, weights=count * (count - 1) // 2).astype(np.int64)
    all_pairs = total * (total - 1) // 2
    if link_type == "link" and not by_entity:
        return int((all_pairs - within).sum())
    return int(all_pairs.sum())


# --------------------------------------------------------------------------------------------
# Candidate pairs of one partition


def _neighbourhood_rank(part: pa.Table, rows: np.ndarray, settings: Settings) -> np.ndarray:
    """Sort key inside a giant block: the Soundex of the first two text comparisons, then the
    first date, so likely duplicates sit close together."""
    rank = np.zeros(len(rows), np.int64)
    texts = [c.column for c in settings.comparisons if c.kind not in ("date", "numeric")][:2]
    for column in texts:
        letters = pc.replace_substring_regex(pc.utf8_lower(_as_text(pc.take(part[column], rows))),
                                             r"[^a-z]", "")
        rank = rank * 30_000 + alg.soundex(letters).astype(np.int64)
    dates = [c.column for c in settings.comparisons if c.kind == "date"][:1]
    for column in dates:
        v = pc.fill_null(pc.take(part[column], rows), 0).to_numpy(zero_copy_only=False)
        rank = rank * 100_000_000 + v.astype(np.int64)
    return rank


def candidate_pairs(part: pa.Table, giant: np.ndarray, settings: Settings):
    """Row pairs of one partition to compare: each record pair once over the whole run,
    across rules, windows and partitions; same-source pairs dropped in link mode. Returns
    (left, right, rule), left the record of the smaller internal id (so of the earlier input).

    A block is cut into windows exactly when it is in `giant` (the run's one list), so every
    partition agrees on which rules compare a pair whole. A pair belongs to the first rule on
    whose key it agrees and whose block is compared whole; failing that, to the first rule
    whose (cut) block it shares, compared if that block's windows hold it (the pairs they
    do not hold are counted by `cut_described_pairs`). Only that rule's partition keeps it."""
    block = part[BLOCK].to_numpy()
    order = np.argsort(block, kind="stable")
    b = block[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]]) if len(b) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(b)])
    size = np.repeat(sizes, sizes)
    split = np.isin(b, giant)
    size = np.where(split, np.maximum(size, settings.max_block + 1), np.minimum(
        size, settings.max_block))
    if split.any():
        idx = order[split]
        sub = np.lexsort((_neighbourhood_rank(part, idx, settings), b[split]))
        order[split] = idx[sub]
    pos = np.arange(len(b)) - np.repeat(starts, sizes)
    rows = alg.split_windows(b, order, pos, size, settings.max_block)
    i, j = alg.pairs_within_blocks(rows.block)
    keep = ~(rows.in_overlap[i] & rows.in_overlap[j])
    left, right = rows.row[i[keep]], rows.row[j[keep]]
    rule = part[RULE].to_numpy()
    keep = _owned(part, left, right, rule[left], giant, len(settings.blocking))
    if settings.link_type == "link":
        src = part[SOURCE].to_numpy()
        keep &= src[left] != src[right]
    left, right = left[keep], right[keep]
    rid = part[RID].to_numpy()
    swap = rid[left] > rid[right]
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    _, dense = np.unique(rid, return_inverse=True)
    a, b2 = dense[left].astype(np.uint64), dense[right].astype(np.uint64)
    pair_key = a << np.uint64(32) | b2
    pair_key[a == b2] = np.uint64(2**64 - 1)
    _, first = np.unique(pair_key, return_index=True)
    first = np.sort(first[pair_key[first] != np.uint64(2**64 - 1)])
    return left[first], right[first], rule[left[first]]


def _pairs_in_groups(codes: np.ndarray, source: np.ndarray, cross_only: bool) -> int:
    """Pairs of rows with equal codes; with `cross_only`, only pairs of different sources."""
    _, inv, counts = np.unique(codes, return_inverse=True, return_counts=True)
    total = int((counts * (counts - 1) // 2).sum())
    if cross_only and len(codes):
        _, same = np.unique(inv.astype(np.int64) * 256 + source, return_counts=True)
        total -= int((same * (same - 1) // 2).sum())
    return total


def cut_described_pairs(part: pa.Table, giant: np.ndarray, settings: Settings) -> np.ndarray:
    """Per rule: the pairs its cut (giant) blocks in this partition own, compared or not.

    A pair of rule r's giant block is r's when it shares no key of a block compared whole
    and no key of an earlier rule: its count is the block's pairs less those sharing such a
    key, by inclusion-exclusion over the other rules (2^(rules-1) groupings of the block's
    rows). Link mode counts pairs across inputs only."""
    n_rules = len(settings.blocking)
    out = np.zeros(n_rules, np.int64)
    block = part[BLOCK].to_numpy()
    in_giant = np.isin(block, giant)
    if not in_giant.any():
        return out
    rule, src = part[RULE].to_numpy()[in_giant], part[SOURCE].to_numpy()[in_giant]
    block = block[in_giant]
    keys = np.stack([part[f"__key_{q}"].to_numpy()[in_giant] for q in range(n_rules)], 1)
    cross = settings.link_type == "link"
    for r in range(n_rules):
        mine = rule == r
        others = [q for q in range(n_rules) if q != r]
        owning = {q: (keys[mine, q] != MISSING) & ((q < r) | ~np.isin(keys[mine, q], giant))
                  for q in others}
        total = _pairs_in_groups(block[mine], src[mine], cross)
        for size in range(1, len(others) + 1):
            for subset in itertools.combinations(others, size):
                ok = np.logical_and.reduce([owning[q] for q in subset])
                code = block[mine][ok]
                with np.errstate(over="ignore"):
                    for q in subset:
                        code = alg.mix64(code * np.uint64(0x100000001B3) ^ keys[mine, q][ok])
                total -= (-1) ** (size + 1) * _pairs_in_groups(code, src[mine][ok], cross)
        out[r] = total
    return out


def _owned(part: pa.Table, left, right, made_by, giant: np.ndarray, n_rules: int):
    """Whether the rule that made each pair here owns it: the first rule whose key the pair
    shares and whose block is compared whole, else the first rule whose key it shares."""
    whole_owner = np.full(len(left), n_rules, np.int64)
    any_owner = np.full(len(left), n_rules, np.int64)
    for r in reversed(range(n_rules)):
        key = part[f"__key_{r}"].to_numpy()
        kl = key[left]
        shared = (kl != MISSING) & (kl == key[right])
        any_owner[shared] = r
        whole_owner[shared & ~np.isin(kl, giant)] = r
    owner = np.where(whole_owner < n_rules, whole_owner, any_owner)
    return owner == made_by


# --------------------------------------------------------------------------------------------
# Comparison vectors


class Columns:
    """Per-column views of a table that the comparisons share: dictionary codes, words."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._codes = {}

    def codes(self, column: str, transform=None, tag: str = ""):
        """(code of each row, -1 for null; the distinct values). A transform runs on the
        column's distinct values, not on its rows, which repeat (a row a record and rule)."""
        key = (column, tag)
        if key not in self._codes:
            if transform is None:
                enc = pc.dictionary_encode(_chunk(self.table[column]))
                self._codes[key] = (pc.fill_null(enc.indices, -1).to_numpy(
                    zero_copy_only=False).astype(np.int64), enc.dictionary)
            else:
                base, words = self.codes(column)
                enc = pc.dictionary_encode(transform(words))
                remap = np.append(pc.fill_null(enc.indices, -1).to_numpy(
                    zero_copy_only=False).astype(np.int64), -1)
                self._codes[key] = (remap[base], enc.dictionary)  # base -1 -> remap[-1]
        return self._codes[key]

    def ints(self, column: str, fill: int = -1) -> np.ndarray:
        return pc.fill_null(self.table[column], fill).to_numpy(zero_copy_only=False).astype(
            np.int64)


def _distinct_scores(ca, cb, words: pa.Array, scorer, dtype) -> np.ndarray:
    """scorer(word[ca], word[cb]) for each pair, each distinct pair of codes scored once."""
    if not len(ca):
        return np.zeros(0, dtype)
    n = max(len(words), 1)
    enc = pc.dictionary_encode(pa.array(ca * n + cb))  # hashing, not sorting
    distinct = enc.dictionary.to_numpy()
    inverse = enc.indices.to_numpy(zero_copy_only=False)
    a = words.take(pa.array(distinct // n)).to_pylist()
    b = words.take(pa.array(distinct % n)).to_pylist()
    return cpdist(a, b, scorer=scorer, dtype=dtype)[inverse]


def _soundex_codes(words: pa.Array) -> np.ndarray:
    letters = pc.replace_substring_regex(pc.utf8_lower(words), r"[^a-z]", "")
    return alg.soundex(letters).astype(np.int64)


def _email_local(col):
    return _null_empty(pc.replace_substring_regex(col, r"@.*$", ""))


def compare_column(comp, cols: Columns, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Gamma of one comparison for each (left, right) row pair: 0 exact ... last else, -1
    when either side is null."""
    g = _compare_column(comp, cols, left, right)
    if comp.swapped_with:
        last = comp.n_levels - 1
        g[g == last - 1] = last  # _compare_column's "else" is one below: the swap sits there
        todo = np.flatnonzero(g == last)
        if len(todo):
            mine, other = cols.table[comp.column], cols.table[comp.swapped_with]
            lt, rt = pa.array(left[todo]), pa.array(right[todo])
            swapped = pc.and_(pc.equal(pc.take(mine, lt), pc.take(other, rt)),
                              pc.equal(pc.take(other, lt), pc.take(mine, rt)))
            hit = pc.fill_null(swapped, False).to_numpy(zero_copy_only=False)
            g[todo[hit]] = last - 1
    return g


def _compare_column(comp, cols: Columns, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    last = comp.n_levels - 1 - bool(comp.swapped_with)
    g = np.full(len(left), last, np.int8)
    if comp.kind in ("date", "numeric"):
        return _compare_values(comp, cols, left, right, g)
    codes, words = cols.codes(comp.column)
    ca, cb = codes[left], codes[right]
    null = (ca < 0) | (cb < 0)
    exact = (ca == cb) & ~null
    g[exact] = 0
    todo = np.flatnonzero(~null & ~exact)
    kind = comp.kind
    if kind in ("jaro_winkler", "name"):
        sim = _distinct_scores(ca[todo], cb[todo], words, JaroWinkler.normalized_similarity,
                               np.float32)
        level = np.full(len(todo), last, np.int8)
        for i, t in reversed(list(enumerate(comp.levels))):
            level[sim >= np.float32(t) - np.float32(1e-6)] = i + 1
        if kind == "name":
            sx = _soundex_codes(words)
            same = (level == last) & (sx[ca[todo]] == sx[cb[todo]]) & (sx[ca[todo]] > 0)
            level[same] = last - 1
        g[todo] = level
    elif kind == "levenshtein":
        dist = _distinct_scores(ca[todo], cb[todo], words, Levenshtein.distance, np.int32)
        level = np.full(len(todo), last, np.int8)
        for i, t in reversed(list(enumerate(comp.levels))):
            level[dist <= t] = i + 1
        g[todo] = level
    elif kind == "phonetic":
        sx = _soundex_codes(words)
        g[todo[(sx[ca[todo]] == sx[cb[todo]]) & (sx[ca[todo]] > 0)]] = 1
    elif kind == "postcode":
        dist = _distinct_scores(ca[todo], cb[todo], words, Levenshtein.distance, np.int32)
        level = np.full(len(todo), last, np.int8)
        for i, t in reversed(list(enumerate(comp.levels))):
            pcodes, _ = cols.codes(comp.column, lambda c, t=t: pc.utf8_slice_codeunits(c, 0, t),
                                   f"prefix{t}")
            level[pcodes[left[todo]] == pcodes[right[todo]]] = i + 2
        level[dist <= 1] = 1
        g[todo] = level
    elif kind == "email":
        lcodes, lwords = cols.codes(comp.column, _email_local, "local")
        la, lb = lcodes[left[todo]], lcodes[right[todo]]
        level = np.full(len(todo), last, np.int8)
        ok = (la >= 0) & (lb >= 0)
        sub = np.flatnonzero(ok & (la != lb))
        sim = _distinct_scores(la[sub], lb[sub], lwords, JaroWinkler.normalized_similarity,
                               np.float32)
        level[sub[sim >= 0.88]] = 2
        level[ok & (la == lb)] = 1
        g[todo] = level
    elif kind == "phone":
        p7, _ = cols.codes(comp.column, lambda c: pc.utf8_slice_codeunits(c, start=-7), "last7")
        dist = _distinct_scores(ca[todo], cb[todo], words, Levenshtein.distance, np.int32)
        level = np.full(len(todo), last, np.int8)
        level[dist <= 1] = 2
        level[p7[left[todo]] == p7[right[todo]]] = 1
        g[todo] = level
    g[null] = -1
    return g


def _compare_values(comp, cols: Columns, left, right, g) -> np.ndarray:
    last = comp.n_levels - 1
    if comp.kind == "numeric":
        v = pc.fill_null(cols.table[comp.column], np.nan).to_numpy(zero_copy_only=False)
        a, b = v[left], v[right]
        null = np.isnan(a) | np.isnan(b)
        diff = np.abs(a - b)
        for i, t in reversed(list(enumerate(comp.levels))):
            g[diff <= t] = i + 1
        g[a == b] = 0
        g[null] = -1
        return g
    v = cols.ints(comp.column)
    a, b = v[left], v[right]
    null = (a <= 0) | (b <= 0)
    days = date_days(v)
    diff = np.abs(days[left] - days[right])
    for i, t in reversed(list(enumerate(comp.levels))):
        g[diff <= t] = i + 2
    # One typo: the 8 digits differ in one place, or in two adjacent ones swapped; or the
    # day and the month swapped.
    da = np.stack([a // 10**k % 10 for k in range(7, -1, -1)], axis=1)
    db = np.stack([b // 10**k % 10 for k in range(7, -1, -1)], axis=1)
    ne = da != db
    n_diff = ne.sum(axis=1)
    swapped = np.zeros(len(a), bool)
    for k in range(7):
        swapped |= (n_diff == 2) & ne[:, k] & ne[:, k + 1] & (da[:, k] == db[:, k + 1]) & (
            da[:, k + 1] == db[:, k])
    ya, ma, dd_a = a // 10_000, a // 100 % 100, a % 100
    yb, mb, dd_b = b // 10_000, b // 100 % 100, b % 100
    dm = (ya == yb) & (ma == dd_b) & (dd_a == mb)
    g[(n_diff == 1) | swapped | dm] = 1
    g[a == b] = 0
    g[null] = -1
    if last < 1:
        g[(g > last)] = last
    return g


def gammas(table: pa.Table, left: np.ndarray, right: np.ndarray, settings: Settings,
           cols: Columns | None = None) -> np.ndarray:
    """(pairs, comparisons) int8 comparison vectors."""
    cols = cols or Columns(table)
    out = np.empty((len(left), len(settings.comparisons)), np.int8)
    for k, comp in enumerate(settings.comparisons):
        out[:, k] = compare_column(comp, cols, left, right)
    return out


def tf_of_pairs(table: pa.Table, left: np.ndarray, gamma: np.ndarray, settings: Settings,
                tf: dict, cols: Columns) -> dict[str, np.ndarray]:
    """For each term-frequency comparison: the value's frequency where the pair agrees
    exactly (NaN elsewhere)."""
    out = {}
    for k, comp in enumerate(settings.comparisons):
        if not comp.term_frequency or comp.column not in tf:
            continue
        codes, words = cols.codes(comp.column)
        table_tf = tf[comp.column]
        pos = pc.index_in(words, value_set=table_tf["value"])
        word_tf = pc.fill_null(pc.take(table_tf["tf"], pos), np.nan).to_numpy(
            zero_copy_only=False) if len(words) else np.zeros(0)
        vals = np.full(len(left), np.nan, np.float32)
        exact = gamma[:, k] == 0
        vals[exact] = word_tf[codes[left[exact]]]
        out[comp.column] = vals
    return out


ALL_PAIRS = -1  # the session code of "every compared pair" in pattern counts


def pattern_counts(part: pa.Table, left, right, gamma: np.ndarray,
                   settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (session, comparison vector) rows and how many pairs have each. Session r is
    a training rule: the pairs that agree on its keys, whichever rule made them (as in
    Splink, not only those the rule made first, which would be biased towards pairs that
    disagree on the earlier rules' fields). Session ALL_PAIRS is every pair."""
    blocks = [np.full((len(gamma), 1), ALL_PAIRS, np.int8)]
    chosen = [np.ones(len(gamma), bool)]
    for r in settings.training:
        key = part[f"__key_{r}"].to_numpy()
        chosen.append((key[left] == key[right]) & (key[left] != MISSING))
        blocks.append(np.full((len(gamma), 1), r, np.int8))
    rows = np.concatenate([np.concatenate([b[c], gamma[c]], axis=1)
                           for b, c in zip(blocks, chosen)])
    if not len(rows):
        return rows.astype(np.int8), np.zeros(0, np.int64)
    return unique_rows(rows)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small-int matrix and their counts: each row packed into one int64
    (4 bits a column) when it fits, which sorts far faster than rows do."""
    if rows.shape[1] * 4 > 62 or rows.min() < -1 or rows.max() > 14:
        patterns, counts = np.unique(rows, axis=0, return_counts=True)
        return patterns.astype(np.int8), counts.astype(np.int64)
    shifts = np.arange(rows.shape[1], dtype=np.int64) * 4
    packed = ((rows.astype(np.int64) + 1) << shifts).sum(axis=1)
    values, counts = np.unique(packed, return_counts=True)
    patterns = ((values[:, None] >> shifts) & 15) - 1
    return patterns.astype(np.int8), counts.astype(np.int64)


def random_pairs(sample: pa.Table, n_pairs: int, settings: Settings, seed) -> tuple:
    """Random distinct record pairs of the sample that the link type would compare."""
    rng = np.random.default_rng(seed)
    n = sample.num_rows
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = rng.integers(0, n, n_pairs)
    b = rng.integers(0, n, n_pairs)
    keep = a != b
    if settings.link_type == "link":
        src = sample[SOURCE].to_numpy()
        keep &= src[a] != src[b]
    return a[keep], b[keep]


def level_counts(gamma: np.ndarray, settings: Settings) -> list[np.ndarray]:
    return [np.bincount(gamma[:, k][gamma[:, k] >= 0].astype(np.int64),
                        minlength=c.n_levels) for k, c in enumerate(settings.comparisons)]


@dataclass
class ComparedPartition:
    pairs: pa.Table         # __rid_l, __rid_r, g_<k>..., tf_<k>..., __truth_same
    patterns: np.ndarray
    counts: np.ndarray
    u_counts: list
    rule_pairs: np.ndarray  # candidate pairs per blocking rule
    rule_true: np.ndarray   # of them, pairs of one true entity (when truth is known)
    seconds: float
    block_hist: np.ndarray
    # per rule: pairs its giant blocks own that their windows did not compare (max_block)
    rule_cut: np.ndarray | None = None


def compare_partition(part: pa.Table, giant: np.ndarray, settings: Settings, tf: dict,
                      sample: pa.Table, u_pairs: int, seed) -> ComparedPartition:
    started = time.perf_counter()
    left, right, rule = candidate_pairs(part, giant, settings)
    cols = Columns(part)
    gamma = gammas(part, left, right, settings, cols)
    tfs = tf_of_pairs(part, left, gamma, settings, tf, cols)
    rid = part[RID].to_numpy()
    truth = part[TRUTH].to_numpy()
    same = (truth[left] == truth[right]) & (truth[left] != NO_TRUTH)
    columns = {"__rid_l": rid[left], "__rid_r": rid[right]}
    src, own = part[SOURCE].combine_chunks(), part[ID].combine_chunks()
    lt, rt = pa.array(left), pa.array(right)
    columns.update({"source_l": src.take(lt), "id_l": own.take(lt), "source_r": src.take(rt),
                    "id_r": own.take(rt)})
    columns.update({f"g_{k}": gamma[:, k] for k in range(gamma.shape[1])})
    columns.update({f"tf_{k}": v for k, v in tfs.items()})
    columns["__truth_same"] = same
    pairs = pa.table(columns)
    patterns, counts = pattern_counts(part, left, right, gamma, settings)
    sa, sb = random_pairs(sample, u_pairs, settings, seed)
    u_counts = level_counts(gammas(sample, sa, sb, settings), settings) if len(sa) else [
        np.zeros(c.n_levels, np.int64) for c in settings.comparisons]
    n_rules = len(settings.blocking)
    rule_pairs = np.bincount(rule.astype(np.int64), minlength=n_rules)
    rule_true = np.bincount(rule[same].astype(np.int64), minlength=n_rules)
    block = part[BLOCK].to_numpy()
    _, sizes = np.unique(block, return_counts=True)
    block_hist = np.histogram(sizes, bins=alg.BLOCK_BINS)[0]
    windowed = np.isin(block[left], giant)  # pairs a cut block's windows made
    rule_cut = cut_described_pairs(part, giant, settings) - np.bincount(
        rule[windowed].astype(np.int64), minlength=n_rules)
    return ComparedPartition(pairs, patterns, counts, u_counts, rule_pairs, rule_true,
                             time.perf_counter() - started, block_hist, rule_cut)


# --------------------------------------------------------------------------------------------
# Learning: u by random sampling, m and lambda by EM

FLOOR = 1e-6


def u_probabilities(u_counts: list[list[np.ndarray]], settings: Settings) -> list[np.ndarray]:
    out = []
    for k in range(len(settings.comparisons)):
        total = np.sum([c[k] for c in u_counts], axis=0).astype(np.float64)
        # Half a pair for a level no random pair reached: rare, not impossible.
        total = np.maximum(total, 0.5)
        out.append(total / total.sum())
    return out


def initial_m(settings: Settings) -> list[np.ndarray]:
    out = []
    for comp in settings.comparisons:
        n = comp.n_levels
        m = np.array([0.9] + [0.1 * 0.5 ** i for i in range(1, n)], np.float64)
        out.append(m / m.sum())
    return out


def _log_terms(idx, valid, m, u, use) -> np.ndarray:
    """(patterns, comparisons) natural-log likelihood ratios; 0 where unused or null."""
    out = np.zeros(idx.shape)
    for k in np.flatnonzero(use):
        out[:, k] = np.where(valid[:, k], np.log(m[k][idx[:, k]] / u[k][idx[:, k]]), 0.0)
    return out


def combine(terms: np.ndarray, settings: Settings, scale: float = 1.0) -> np.ndarray:
    """The total of per-comparison weights, each group's sum held within +-max_weight (given
    in bits; `scale` converts to the terms' unit): a household shares its phone, address and
    zip, and a move changes all three at once, so neither is three independent signs."""
    total = terms.sum(axis=1)
    for columns, cap in settings.groups:
        ks = [i for i, c in enumerate(settings.comparisons) if c.column in columns]
        part = terms[:, ks].sum(axis=1)
        total += np.clip(part, -cap * scale, cap * scale) - part
    return total


def em(patterns: np.ndarray, counts: np.ndarray, u: list[np.ndarray], settings: Settings,
       estimate: np.ndarray, m: list[np.ndarray], lam: float = 0.3, fit_m: bool = True):
    """m (of the comparisons in `estimate`) and the share of matches, by expectation
    maximisation on the counts of each distinct comparison vector; u stays at its sampled
    values. With fit_m False only the share is fitted."""
    m = [x.copy() for x in m]
    counts = counts.astype(np.float64)
    history = []
    if not len(counts) or counts.sum() == 0:
        return m, lam, history
    valid = patterns >= 0
    idx = np.where(valid, patterns, 0).astype(np.int64)
    for it in range(settings.em_iterations):
        ratio = combine(_log_terms(idx, valid, m, u, estimate), settings, math.log(2))
        logit = math.log(lam) - math.log1p(-lam) + ratio
        post = 1.0 / (1.0 + np.exp(-np.clip(logit, -700, 700)))
        w = counts * post
        new_lam = float(np.clip(w.sum() / counts.sum(), FLOOR, 1 - FLOOR))
        change = abs(new_lam - lam)
        if fit_m:
            for k in np.flatnonzero(estimate):
                num = np.bincount(idx[:, k][valid[:, k]], weights=w[valid[:, k]],
                                  minlength=len(m[k]))
                mk = np.maximum(num / max(num.sum(), FLOOR), FLOOR)
                mk /= mk.sum()
                change = max(change, float(np.abs(mk - m[k]).max()))
                m[k] = mk
        lam = new_lam
        history.append({"iteration": it + 1, "lambda": lam, "max_change": change})
        if change < settings.em_tolerance:
            break
    return m, lam, history


def total_pairs(records_per_source: list[int], link_type: str) -> int:
    """How many record pairs the link type could compare, blocked or not."""
    n = sum(records_per_source)
    if link_type == "link":
        return (n * n - sum(k * k for k in records_per_source)) // 2
    return n * (n - 1) // 2


def train(patterns: list, counts: list, u_counts: list, settings: Settings,
          all_pairs: int) -> dict:
    """The model as a plain dict (what model files hold): settings, u, m, the share of
    matches among the compared pairs (lambda) and among all `all_pairs` pairs (prior).

    As Splink does, m is estimated once per blocking rule, on the pairs that rule made, with
    the comparisons of the rule's own columns left out (blocking made them agree, so those
    pairs say nothing about them); each comparison's m is the mean over the rules that
    estimated it. The share of matches among all compared pairs is then fitted with m and u
    fixed. The score's prior is the share among all pairs: the compared pairs agree on their
    blocking keys, and that agreement is already counted by the comparisons."""
    started = time.perf_counter()
    k = len(settings.comparisons)
    allp = np.concatenate([p for p in patterns if len(p)] or [np.zeros((0, k + 1), np.int8)])
    allc = np.concatenate([c for c in counts if len(c)] or [np.zeros(0, np.int64)])
    if len(allp):
        uniq, inv = np.unique(allp, axis=0, return_inverse=True)  # a few thousand rows
        allc = np.bincount(inv.reshape(-1), weights=allc, minlength=len(uniq))
        allp = uniq
    session, gamma = allp[:, 0], allp[:, 1:]
    u = u_probabilities(u_counts, settings)
    m0 = initial_m(settings)
    sums = [np.zeros_like(x) for x in m0]
    seen = np.zeros(k)
    sessions = []
    for r in settings.training:
        blocked = {key.column for key in settings.blocking[r]}
        estimate = np.array([c.column not in blocked for c in settings.comparisons])
        here = session == r
        if not here.any() or not estimate.any():
            continue
        m_r, lam_r, hist = em(gamma[here], allc[here], u, settings, estimate, m0)
        sessions.append({"rule": settings.rule_names()[r], "lambda": lam_r,
                         "iterations": len(hist), "pairs": int(allc[here].sum())})
        for j in np.flatnonzero(estimate):
            sums[j] += m_r[j]
            seen[j] += 1
    m = [sums[j] / seen[j] if seen[j] else m0[j] for j in range(k)]
    everything, every_pair = np.ones(k, bool), session == ALL_PAIRS
    _, lam, hist = em(gamma[every_pair], allc[every_pair], u, settings, everything, m,
                      fit_m=False)
    compared = float(allc[every_pair].sum())
    prior = float(np.clip(lam * compared / max(all_pairs, 1), 1e-15, 0.5))
    return {"format": "rayflow-identity-model/1", "settings": settings.to_dict(),
            "lambda": lam, "prior": prior, "all_pairs": int(all_pairs),
            "m": [x.tolist() for x in m], "u": [x.tolist() for x in u],
            "em_sessions": sessions, "lambda_iterations": len(hist),
            "pairs_trained_on": int(allc[every_pair].sum()),
            "train_seconds": round(time.perf_counter() - started, 4)}


def save_model(model: dict, url: str) -> str:
    import fsspec

    with fsspec.open(url, "w") as fh:
        json.dump(model, fh, indent=1)
    return url


def load_model(url: str, settings: Settings) -> dict:
    """A saved model, checked against the run's comparisons (same columns, kinds, levels)."""
    import fsspec

    try:
        with fsspec.open(url, "r") as fh:
            model = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Model file {url!r} cannot be read ({exc}). Give the model.json a "
                         f"training run wrote (its --output folder).") from None
    if model.get("format") != "rayflow-identity-model/1":
        raise ModelError(f"{url!r} is not a rayflow identity model (no format key).")
    trained = parse_settings(model["settings"], where=f"model {url}")
    mine = [(c.column, c.kind, c.levels) for c in settings.comparisons]
    theirs = [(c.column, c.kind, c.levels) for c in trained.comparisons]
    if mine != theirs:
        raise ModelError(f"Model {url!r} was trained on comparisons {theirs}, but these "
                         f"settings compare {mine}. Use the settings it was trained with.")
    return model


class ModelError(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# Scoring and explaining


def bayes_factors(model: dict) -> list[np.ndarray]:
    """log2(m/u) of each level of each comparison."""
    return [np.log2(np.asarray(m) / np.asarray(u)) for m, u in zip(model["m"], model["u"])]


def prior_weight(model: dict) -> float:
    """log2 of the prior odds that two records, any two, are one entity."""
    lam = model["prior"]
    return math.log2(lam / (1 - lam))


def score_pairs(pairs: pa.Table, model: dict, settings: Settings) -> pa.Table:
    """match_weight, match_probability and each field's weight w_<column> of each pair."""
    bfs = bayes_factors(model)
    out = {}
    for k, comp in enumerate(settings.comparisons):
        g = pairs[f"g_{k}"].to_numpy()
        w = np.where(g >= 0, bfs[k][np.maximum(g, 0)], 0.0)
        tf_name = f"tf_{comp.column}"
        if tf_name in pairs.column_names:
            tf = pairs[tf_name].to_numpy(zero_copy_only=False).astype(np.float64)
            u_exact = model["u"][k][0]
            has = ~np.isnan(tf) & (tf > 0)
            w = np.where(has, w + np.log2(u_exact / np.where(has, tf, 1.0)), w)
        out[f"w_{comp.column}"] = w.astype(np.float32)
    terms = np.stack([out[f"w_{c.column}"].astype(np.float64) for c in settings.comparisons],
                     axis=1) if pairs.num_rows else np.zeros((0, len(settings.comparisons)))
    total = prior_weight(model) + combine(terms, settings)
    prob = 1.0 / (1.0 + np.exp2(-np.clip(total, -1000, 1000)))
    cols = {c: pairs[c] for c in ("__rid_l", "__rid_r", "source_l", "id_l", "source_r", "id_r")
            if c in pairs.column_names}
    cols.update({"match_weight": total.astype(np.float32), "match_probability": prob})
    cols.update({f"g_{comp.column}": pairs[f"g_{k}"]
                 for k, comp in enumerate(settings.comparisons)})
    cols.update(out)
    cols["__truth_same"] = pairs["__truth_same"]
    return pa.table(cols)


def explain(pair: dict, model: dict, settings: Settings) -> list[dict]:
    """One scored pair's evidence, field by field: the level it reached and its weight."""
    rows = []
    if "id_l" in pair:  # in link mode an id is only unique within its input: name both
        rows.append({"field": "(records)", "level": f"{pair.get('source_l')}:{pair['id_l']} ~ "
                     f"{pair.get('source_r')}:{pair['id_r']}", "weight": 0.0})
    rows += [{"field": "(prior: two records, any two, are a match)", "level": "",
             "weight": round(prior_weight(model), 3)}]
    for comp in settings.comparisons:
        g = int(pair[f"g_{comp.column}"])
        rows.append({"field": comp.column,
                     "level": "null (no evidence)" if g < 0 else comp.level_names[g],
                     "weight": round(float(pair[f"w_{comp.column}"]), 3)})
    rows.append({"field": "(total match weight)", "level": f"probability "
                 f"{float(pair['match_probability']):.4f}",
                 "weight": round(float(pair["match_weight"]), 3)})
    return rows


# --------------------------------------------------------------------------------------------
# Clusters


def cluster(ids: pa.Table, edges: list[pa.Table]) -> pa.Table:
    """(source, id, cluster_id, cluster_size) of every record; cluster_id is the smallest
    internal id of the cluster, so it does not depend on how the pairs were partitioned."""
    rid = ids[RID].to_numpy()
    order = np.argsort(rid, kind="stable")
    ids = ids.take(pa.array(order))
    rid = rid[order]
    if edges:
        e = pa.concat_tables([t.select(["__rid_l", "__rid_r"]) for t in edges])
        a = np.searchsorted(rid, e["__rid_l"].to_numpy())
        b = np.searchsorted(rid, e["__rid_r"].to_numpy())
    else:
        a = b = np.zeros(0, np.int64)
    label = alg.connected_components(len(rid), a, b)
    size = np.bincount(label, minlength=len(rid))[label].astype(np.int32)
    return pa.table({"source": ids[SOURCE], "id": ids["id"], "cluster_id": pa.array(rid[label]),
                     "cluster_size": pa.array(size), RID: ids[RID], TRUTH: ids[TRUTH]})


def metrics(clusters: pa.Table) -> dict | None:
    """Pairwise precision, recall and F1 of the clusters against the truth labels."""
    truth = clusters[TRUTH].to_numpy()
    known = truth != NO_TRUTH
    if not known.any():
        return None
    ent = pa.table({"record_id": clusters[RID], "entity_id": clusters["cluster_id"]}).filter(
        pa.array(known))
    tru = pa.table({"record_id": clusters[RID], "entity_id": clusters[TRUTH]}).filter(
        pa.array(known))
    return alg.pairwise_metrics(ent, tru)


def concat_ids(tables: list[pa.Table]) -> pa.Table:
    """The ids of every shard as one table; ids of different types become strings."""
    types = {t.schema.field("id").type for t in tables}
    if len(types) > 1:
        tables = [t.set_column(t.schema.get_field_index("id"), "id", _as_text(t["id"]))
                  for t in tables]
    return pa.concat_tables(tables)


# --------------------------------------------------------------------------------------------
# The whole job in one process (the benchmark's baseline, and small uses)


def resolve_in_process(tables: list[pa.Table], settings: Settings, truth: pa.Table | None = None,
                       partitions: int = 8, shard_rows: int = 100_000, model: dict | None = None,
                       seed: int = 0) -> dict:
    """The flow's steps one after another in this process: tables are the inputs (one per
    source). Returns clusters, scored pairs, the model and timings."""
    t0 = time.perf_counter()
    shards, n_shards = [], sum(-(-max(t.num_rows, 1) // shard_rows) for t in tables)
    per_shard = -(-settings.u_sample_records // max(n_shards, 1))
    s = 0
    id_type = None
    if settings.unique_id:
        types = {_chunk(t[settings.unique_id]).type for t in tables}
        id_type = types.pop() if len(types) == 1 else pa.string()
    for source, table in enumerate(tables):
        mine = truth_of_source(truth, source, settings.source_names) if truth is not None \
            else None
        for start in range(0, max(table.num_rows, 1), shard_rows):
            shards.append(prepare_shard(table.slice(start, shard_rows), settings, source, s,
                                        partitions, per_shard, mine, seed, n_shards,
                                        id_type=id_type))
            s += 1
    t1 = time.perf_counter()
    tf = term_frequencies([sh.tf_counts for sh in shards], settings)
    giant = giant_blocks([sh.block_counts for sh in shards], settings.max_block)
    sample = pa.concat_tables([sh.sample for sh in shards])
    compared = []
    for p in range(partitions):
        part = pa.concat_tables([sh.pieces[p] for sh in shards])
        compared.append(compare_partition(part, giant, settings, tf, sample,
                                          settings.u_sample_pairs // partitions, (seed, p)))
    t2 = time.perf_counter()
    if model is None:
        model = train([c.patterns for c in compared], [c.counts for c in compared],
                      [c.u_counts for c in compared], settings,
                      total_pairs([t.num_rows for t in tables], settings.link_type))
    t3 = time.perf_counter()
    scored = [score_pairs(c.pairs, model, settings) for c in compared]
    edges = [t.filter(pc.greater_equal(t["match_probability"], settings.threshold))
             for t in scored]
    clusters = cluster(concat_ids([sh.ids for sh in shards]), edges)
    t4 = time.perf_counter()
    return {"clusters": clusters, "scored": scored, "model": model, "metrics": metrics(clusters),
            "candidates": int(sum(c.pairs.num_rows for c in compared)),
            "rule_cut": sum(c.rule_cut for c in compared),
            "seconds": t4 - t0, "stage_seconds": {"prepare": t1 - t0, "compare": t2 - t1,
                                                  "train": t3 - t2, "score_cluster": t4 - t3}}
