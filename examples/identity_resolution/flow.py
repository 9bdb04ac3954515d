"""Identity resolution on rayflow: which of N people records are the same person?

    rayflow run examples/identity_resolution/flow.py --records 200000
    rayflow run examples/identity_resolution/flow.py --data s3://bucket/people \
        --output s3://bucket/out/entities.parquet

The shape is a shuffle and a match, as at scale (millions of records, blocked into shards):

    start -> prepare (foreach shard) -> gather -> fan_out -> match (foreach partition)
          -> resolve -> end

prepare normalizes one shard and hashes its records, one row per blocking key, into P
partitions; gather concatenates each partition's pieces and lists the giant blocks; match
scores the candidate pairs of one partition; resolve takes connected components over all the
matches. Every artifact between steps is an Arrow table (or a few numbers). The algorithm
itself lives in algorithm.py as plain functions; this file only wires them into steps. The
truth file, when there is one, is read by the end step alone, for the metrics.
"""

import json
import os
import time

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from rayflow import FlowSpec, Parameter, card, current, step
from rayflow.cards import Markdown, Table, VegaChart

try:  # imported from the repository root (tests, benchmarks)
    from examples.identity_resolution import algorithm
    from examples.identity_resolution import generate as dataset
except ImportError:  # loaded by rayflow with this folder on sys.path (a cluster ships only it)
    import algorithm
    import generate as dataset

HERE = os.path.dirname(os.path.abspath(__file__))


class IdentityResolutionFlow(FlowSpec):
    """Block, match and cluster people records; write the entity table and its metrics."""

    data = Parameter("data", default="",
                     help="folder or s3:// URL with part-*.parquet shards (and truth.parquet); "
                          "empty: generate --records records locally first")
    records = Parameter("records", default=200_000, help="records to generate when no --data")
    seed = Parameter("seed", default=0, help="generator seed when no --data")
    partitions = Parameter("partitions", default=16,
                           help="match tasks; several per CPU so a slow one does not idle others")
    threshold = Parameter("threshold", default=algorithm.DEFAULT_THRESHOLD,
                          help="match weight at or above which two records are the same person")
    max_block = Parameter("max_block", default=algorithm.DEFAULT_MAX_BLOCK,
                          help="blocks larger than this are split into sorted windows")
    output = Parameter("output", default="out/entities.parquet",
                       help="where the entity table goes (local path or s3:// URL)")

    @step
    def start(self):
        """Find the shards, generating a dataset first when none was given."""
        started = time.time()
        self.data_url = self.data or self._generate()
        self.generate_seconds = time.time() - started
        self.shards = dataset.list_shards(self.data_url)
        self.started = time.time()  # throughput counts the job, not the data generation
        self.next(self.prepare, foreach="shards")

    def _generate(self) -> str:
        out = os.path.join(HERE, "data", f"records-{self.records}-seed-{self.seed}")
        table, truth = dataset.generate(self.records, self.seed)
        dataset.write_dataset(table, truth, out)
        print(f"generated {table.num_rows:,} records into {out}")
        return out

    @step
    def prepare(self):
        """Normalize one shard and cut it into per-partition pieces (map side of the shuffle)."""
        table = dataset.read_parquet(self.input)
        self.slices = algorithm.prepare_shard(table, self.partitions)
        self.record_ids = table.select(["record_id"])
        self.next(self.gather)

    @step
    def gather(self, inputs):
        """One table per partition from every shard's piece (reduce side of the shuffle),
        and the giant blocks among them (the match tasks split those)."""
        self.parts = algorithm.gather_partitions([inp.slices for inp in inputs])
        self.giant = algorithm.find_giant_blocks(self.parts, self.max_block)
        self.record_ids = pa.concat_tables([inp.record_ids for inp in inputs])
        self.merge_artifacts(inputs, include=["data_url", "started", "generate_seconds"])
        self.next(self.fan_out)

    @step
    def fan_out(self):
        """A join may not also split (Metaflow's rule), so the split over partitions is here."""
        self.next(self.match, foreach="parts")

    @step
    def match(self):
        """Candidate pairs, scores and decisions for one partition."""
        result = algorithm.match_partition(self.input, self.giant, self.threshold,
                                           self.max_block)
        self.pairs = result.pairs
        self.candidates = result.candidates
        self.match_seconds = result.seconds
        self.score_hist, self.block_hist = result.score_hist, result.block_hist
        self.next(self.resolve)

    @step
    def resolve(self, inputs):
        """Connected components over every partition's matched pairs."""
        self.merge_artifacts(inputs, include=["data_url", "started", "generate_seconds",
                                              "record_ids", "giant"])
        self.entities = algorithm.resolve_entities(self.record_ids["record_id"].to_numpy(),
                                                   [inp.pairs for inp in inputs])
        self.candidates = sum(inp.candidates for inp in inputs)
        self.matched_pairs = sum(inp.pairs.num_rows for inp in inputs)
        self.match_seconds = sum(inp.match_seconds for inp in inputs)
        self.score_hist = sum(inp.score_hist for inp in inputs)
        self.block_hist = sum(inp.block_hist for inp in inputs)
        self.matches = pa.concat_tables([inp.pairs for inp in inputs])
        self.next(self.end)

    @card(type="blank", id="results")
    @step
    def end(self):
        """Write the entity table, score it against the truth if there is one, summarize."""
        self.output_url = dataset.write_parquet(self.entities, self.output)
        seconds = time.time() - self.started
        records = self.entities.num_rows
        self.metrics = {
            "records": records, "entities": pc.count_distinct(self.entities["entity_id"]).as_py(),
            "candidate_pairs": self.candidates, "matched_pairs": self.matched_pairs,
            "giant_blocks_split": self.giant.num_rows, "seconds": round(seconds, 3),
            "records_per_second": round(records / seconds), "pairs_per_second": round(
                self.candidates / seconds),
            "pairs_per_match_second": round(self.candidates / max(self.match_seconds, 1e-9)),
        }
        truth = dataset.read_truth(self.data_url)
        if truth is not None:
            self.metrics.update({k: v for k, v in algorithm.pairwise_metrics(
                self.entities, truth).items() if k in ("precision", "recall", "f1")})
        metrics_url = self.output_url.rsplit(".", 1)[0] + ".metrics.json"
        with fsspec.open(metrics_url, "w") as fh:
            json.dump(self.metrics, fh, indent=2)
        self.sweep = threshold_sweep(self.record_ids, self.matches, truth, self.threshold)
        results_card(current.card["results"], self.metrics, self.sweep, self.score_hist,
                     self.block_hist, self.threshold)
        print(summary(self.metrics, self.output_url, metrics_url))


def threshold_sweep(record_ids: pa.Table, matches: pa.Table, truth, threshold: float,
                    steps: int = 6) -> list[dict]:
    """Precision and recall of the entities at thresholds from the run's upward (the pairs
    below the run's threshold were not kept, so the sweep cannot go lower)."""
    if truth is None or matches.num_rows == 0:
        return []
    top = float(pc.max(matches["score"]).as_py())
    ids = record_ids["record_id"].to_numpy()
    out = []
    for k in range(steps):
        t = threshold + (top - threshold) * k / steps
        kept = matches.filter(pc.greater_equal(matches["score"], t))
        m = algorithm.pairwise_metrics(algorithm.resolve_entities(ids, [kept]), truth)
        out.append({"threshold": round(t, 2), "precision": m["precision"],
                    "recall": m["recall"], "f1": m["f1"]})
    return out


def results_card(card_, m: dict, sweep: list[dict], score_hist, block_hist,
                 threshold: float) -> None:
    """The end step's card: the metrics, then pictures of the threshold, scores and blocks."""
    card_.append(Markdown(f"# Identity resolution\n{m['records']:,} records became "
                          f"**{m['entities']:,} entities** in {m['seconds']:.1f} s "
                          f"(threshold {threshold:g})."))
    card_.append(Table([[k, f"{v:.4f}" if isinstance(v, float) else f"{v:,}"]
                        for k, v in m.items()], headers=["metric", "value"]))
    if sweep:
        rows = [{"threshold": r["threshold"], "value": r[k], "metric": k}
                for r in sweep for k in ("precision", "recall", "f1")]
        card_.append(VegaChart({
            "title": "Precision and recall against the threshold (from the run's upward)",
            "width": 520, "height": 240, "data": {"values": rows},
            "mark": {"type": "line", "point": True},
            "encoding": {"x": {"field": "threshold", "type": "quantitative"},
                         "y": {"field": "value", "type": "quantitative"},
                         "color": {"field": "metric", "type": "nominal"}}}))
    edges = algorithm.SCORE_BINS
    card_.append(VegaChart({
        "title": "Candidate pairs by match weight (the threshold is the rule)",
        "width": 520, "height": 220,
        "layer": [
            {"data": {"values": [{"weight": float(edges[i]), "pairs": int(c)}
                                 for i, c in enumerate(score_hist)]},
             "mark": "bar", "encoding": {"x": {"field": "weight", "type": "quantitative"},
                                         "y": {"field": "pairs", "type": "quantitative"}}},
            {"data": {"values": [{"weight": threshold}]}, "mark": {"type": "rule",
                                                                 "color": "#d64545"},
             "encoding": {"x": {"field": "weight", "type": "quantitative"}}}]}))
    labels = [f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" if hi < 1 << 62 else f"{lo}+"
              for lo, hi in zip(algorithm.BLOCK_BINS[:-1], algorithm.BLOCK_BINS[1:])]
    card_.append(VegaChart({
        "title": "Blocks by size (records sharing a blocking key)", "width": 520,
        "height": 220, "data": {"values": [{"size": lab, "blocks": int(c)}
                                           for lab, c in zip(labels, block_hist)]},
        "mark": "bar", "encoding": {"x": {"field": "size", "type": "ordinal", "sort": labels},
                                    "y": {"field": "blocks", "type": "quantitative"}}}))


def summary(m: dict, output_url: str, metrics_url: str) -> str:
    lines = [
        f"records            {m['records']:,} -> {m['entities']:,} entities",
        (f"candidate pairs    {m['candidate_pairs']:,} ({m['matched_pairs']:,} matched, "
         f"{m['giant_blocks_split']} giant blocks split)"),
        (f"throughput         {m['records_per_second']:,} records/s, "
         f"{m['pairs_per_second']:,} comparisons/s over {m['seconds']:.1f} s"),
    ]
    if "f1" in m:
        lines.append(f"quality            precision {m['precision']:.4f}  recall "
                     f"{m['recall']:.4f}  F1 {m['f1']:.4f}")
    lines += [f"entities written   {output_url}", f"metrics written    {metrics_url}"]
    return "\n".join(lines)


if __name__ == "__main__":
    IdentityResolutionFlow()
