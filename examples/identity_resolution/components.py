"""Clusters without a single holder: connected components of the matched pairs as Ray tasks
over hash partitions of the nodes, each task holding one partition's edges or records.

The components are found by the alternating large-star / small-star rounds of Kiveris et al.
("Connected Components in MapReduce and Beyond", SoCC 2014). Edges are pairs of internal ids
(`__rid`); each operation groups the edges by one end (a shuffle through Ray's object store,
K pieces from each of K tasks), and both operations only ever point a node at a smaller one.
The rounds stop when a round leaves the edge set as it was: the graph is then a star around
the smallest id of each component, so every node's label is that smallest id -- the same
cluster id as the single-task union-find of `model.cluster`, bit for bit.

Then the records meet their labels: the prepare steps' id tables, hashed by `__rid` into the
same K partitions, are joined with the labels (a record no pair touched is its own cluster),
re-hashed by label, and each label partition counts its clusters' sizes and the pair counts
the metrics need. The caller streams those tables into one Parquet file.

Everything here works on numpy arrays and Arrow tables; only `Components` touches Ray.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

try:
    from examples.identity_resolution import algorithm as alg
    from examples.identity_resolution.model import NO_TRUTH, RID, SOURCE, TRUTH
except ImportError:  # loaded with this folder on sys.path
    import algorithm as alg
    from model import NO_TRUTH, RID, SOURCE, TRUTH

EDGES_PER_TASK = 400_000  # what one task of the rounds holds, about: sizes K
NO_EDGES = np.zeros((2, 0), np.int64)


def task_count(edges: int, records: int) -> int:
    """K: partitions of the rounds and of the records' join, grown with the data so that
    what one task holds stays about the same size."""
    return max(1, -(-max(edges, records // 4) // EDGES_PER_TASK))


def buckets(x: np.ndarray, k: int) -> np.ndarray:
    return (alg.mix64(np.asarray(x, np.int64).view(np.uint64)) % np.uint64(k)).astype(np.int64)


def route(key: np.ndarray, val: np.ndarray, k: int) -> list[np.ndarray]:
    """(2, n) int64 pieces of (key, val), one per partition of key."""
    key, val = np.asarray(key, np.int64), np.asarray(val, np.int64)
    if k == 1:
        return [np.stack([key, val])]
    b = buckets(key, k)
    order = np.argsort(b, kind="stable")
    bounds = np.searchsorted(b[order], np.arange(k + 1))
    key, val = key[order], val[order]
    return [np.stack([key[lo:hi], val[lo:hi]]) for lo, hi in zip(bounds[:-1], bounds[1:])]


def both_ways(hi: np.ndarray, lo: np.ndarray, k: int) -> list[np.ndarray]:
    """An undirected edge set routed for large-star: each edge under both of its ends."""
    return route(np.concatenate([hi, lo]), np.concatenate([lo, hi]), k)


def _distinct(pieces) -> tuple[np.ndarray, np.ndarray]:
    """(key, val) of the pieces, without repeats, sorted by key then val."""
    edges = np.concatenate([p for p in pieces if p.shape[1]] or [NO_EDGES], axis=1)
    key, val = edges[0], edges[1]
    order = np.lexsort((val, key))
    key, val = key[order], val[order]
    if not len(key):
        return key, val
    new = np.r_[True, (key[1:] != key[:-1]) | (val[1:] != val[:-1])]
    return key[new], val[new]


def _groups(key: np.ndarray, val: np.ndarray):
    """Start of each key's run, its size and the smallest val of each (key sorted)."""
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    return starts, sizes, np.minimum.reduceat(val, starts)


def large_star(pieces, k: int) -> list[np.ndarray]:
    """Each node u links its larger neighbours to the smallest of u and its neighbours.
    In: edges under both ends. Out: (larger, smaller) edges routed by the larger end."""
    key, val = _distinct(pieces)
    if not len(key):
        return [NO_EDGES] * k
    starts, sizes, low = _groups(key, val)
    low = np.repeat(np.minimum(low, key[starts]), sizes)
    out = val > key
    return route(val[out], low[out], k)


def small_star(pieces, k: int):
    """Each node u links itself and its smaller neighbours to the smallest of them.
    In: (larger, smaller) edges routed by the larger end. Out: the new edges under both
    ends, a fingerprint of the edge set it was given, and each key's smallest neighbour."""
    key, val = _distinct(pieces)
    if not len(key):
        return [NO_EDGES] * k, (0, 0), NO_EDGES
    with np.errstate(over="ignore"):
        mixed = alg.mix64(key.view(np.uint64) ^ alg.mix64(val.view(np.uint64)))
        fingerprint = (len(key), int(mixed.sum(dtype=np.uint64)))
    starts, sizes, low = _groups(key, val)
    each = np.repeat(low, sizes)
    moved = val != each
    hi = np.concatenate([val[moved], key[starts]])
    lo = np.concatenate([each[moved], low])
    return both_ways(hi, lo, k), fingerprint, np.stack([key[starts], low])


def label_records(labels: np.ndarray, k: int, *pieces: pa.Table) -> list[pa.Table]:
    """One partition's records (rid, source, id, truth) with their cluster id (the label of
    their node, or their own rid when no pair touched them), routed by cluster id."""
    table = pa.concat_tables(pieces)
    rid = table[RID].to_numpy()
    label = rid.copy()
    if labels.shape[1]:
        pos = np.minimum(np.searchsorted(labels[0], rid), labels.shape[1] - 1)
        hit = labels[0][pos] == rid
        label[hit] = labels[1][pos[hit]]
    table = table.append_column("cluster_id", pa.array(label))
    return route_table(table, label, k)


def route_table(table: pa.Table, key: np.ndarray, k: int) -> list[pa.Table]:
    if k == 1:
        return [table]
    b = buckets(key, k)
    order = np.argsort(b, kind="stable")
    bounds = np.searchsorted(b[order], np.arange(k + 1))
    return [table.take(pa.array(order[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def finish_clusters(*pieces: pa.Table) -> tuple[pa.Table, dict]:
    """One label partition's records as (source, id, cluster_id, cluster_size), a cluster's
    records together, and its counts: records, clusters, and for the records the truth
    knows, the pairs put in one cluster and those of them in one true entity."""
    table = pa.concat_tables(pieces)
    label, rid = table["cluster_id"].to_numpy(), table[RID].to_numpy()
    order = np.lexsort((rid, label))
    table = table.take(pa.array(order))
    label = label[order]
    clusters, dense, sizes = np.unique(label, return_inverse=True, return_counts=True)
    truth = table[TRUTH].to_numpy()
    known = truth != NO_TRUTH
    predicted = _pairs(np.bincount(dense[known], minlength=len(clusters)))
    joint = 0
    if known.any():
        _, joint_counts = np.unique(np.stack([dense[known], truth[known]]), axis=1,
                                    return_counts=True)
        joint = _pairs(joint_counts)
    out = pa.table({"source": table[SOURCE], "id": table["id"],
                    "cluster_id": pa.array(label),
                    "cluster_size": pa.array(sizes[dense].astype(np.int32))})
    return out, {"records": table.num_rows, "clusters": len(clusters),
                 "predicted_pairs": predicted, "both_pairs": joint}


def scores(true_pairs: int, predicted: int, both: int) -> dict:
    """Pairwise precision, recall and F1 from the counts (as `algorithm.pairwise_metrics`)."""
    precision = both / predicted if predicted else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _flat(values: list):
    """A task's returns as Ray wants them: the one value alone, or a tuple of several."""
    return values[0] if len(values) == 1 else tuple(values)


def _flat_large(k: int, *pieces):
    return _flat(large_star(pieces, k))


def _flat_small(k: int, *pieces):
    out, fingerprint, labels = small_star(pieces, k)
    return _flat([*out, fingerprint, labels])


def _flat_label(labels, k: int, *pieces):
    return _flat(label_records(labels, k, *pieces))


class Components:
    """The rounds and the join as Ray tasks; the caller (one step) holds only object refs,
    and one partition's input at a time while it hands the inputs over."""

    def __init__(self, k: int):
        import ray

        self.ray, self.k = ray, k
        self.edge_pieces: list[list] = [[] for _ in range(k)]
        self.record_pieces: list[list] = [[] for _ in range(k)]
        self.rounds = 0
        opts = {"num_cpus": 1, "max_retries": 3}
        self._large = ray.remote(**opts)(_flat_large)
        self._small = ray.remote(**opts)(_flat_small)
        self._label = ray.remote(**opts)(_flat_label)
        self._finish = ray.remote(**opts)(finish_clusters)

    def add_edges(self, left: np.ndarray, right: np.ndarray) -> None:
        for q, piece in enumerate(both_ways(right, left, self.k)):
            self.edge_pieces[q].append(self.ray.put(piece))

    def add_records(self, ids: pa.Table) -> None:
        for q, piece in enumerate(route_table(ids, ids[RID].to_numpy(), self.k)):
            self.record_pieces[q].append(self.ray.put(piece))

    def _call(self, fn, returns: int, *args) -> list:
        refs = fn.options(num_returns=returns).remote(*args)
        return [refs] if returns == 1 else list(refs)

    def labels(self, max_rounds: int = 200) -> list:
        """Per node partition, the (node, smallest node of its component) of every node
        some edge touches, as object refs."""
        k, pieces, before = self.k, self.edge_pieces, None
        while True:
            self.rounds += 1
            out = [self._call(self._large, k, k, *pieces[q]) for q in range(k)]
            routed = [[out[s][q] for s in range(k)] for q in range(k)]
            out = [self._call(self._small, k + 2, k, *routed[q]) for q in range(k)]
            prints = self.ray.get([o[k] for o in out])
            now = (sum(p[0] for p in prints), sum(p[1] for p in prints) % 2**64)
            if now == before or now[0] == 0:
                return [o[k + 1] for o in out]
            if self.rounds >= max_rounds:
                raise RuntimeError(f"connected components: no fixed point in {max_rounds} "
                                   f"rounds")
            before = now
            pieces = [[out[s][q] for s in range(k)] for q in range(k)]

    def clusters(self):
        """Yields each label partition's (clusters table, counts), one at a time."""
        k, labels = self.k, self.labels()
        out = [self._call(self._label, k, labels[q], k, *self.record_pieces[q])
               for q in range(k)]
        self.edge_pieces = self.record_pieces = None
        finals = [self._call(self._finish, 2, *[out[s][q] for s in range(k)])
                  for q in range(k)]
        for table_ref, counts_ref in finals:
            yield self.ray.get(table_ref), self.ray.get(counts_ref)


def labels_in_process(left: np.ndarray, right: np.ndarray, k: int) -> tuple[list, int]:
    """The same rounds in this process (tests and small runs): per node partition, the
    (node, label) array of every node an edge touches; and how many rounds it took."""
    pieces, before, rounds = [[p] for p in both_ways(right, left, k)], None, 0
    while True:
        rounds += 1
        out = [large_star(pieces[q], k) for q in range(k)]
        out = [small_star([out[s][q] for s in range(k)], k) for q in range(k)]
        now = (sum(o[1][0] for o in out), sum(o[1][1] for o in out) % 2**64)
        if now == before or now[0] == 0:
            return [o[2] for o in out], rounds
        before = now
        pieces = [[out[s][0][q] for s in range(k)] for q in range(k)]
