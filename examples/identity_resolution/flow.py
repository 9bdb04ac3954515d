"""Identity resolution on rayflow: which records are the same person (or thing)?

    rayflow run examples/identity_resolution/flow.py --records 200000
    rayflow run examples/identity_resolution/flow.py --config settings my.yaml --data people.csv
    rayflow run examples/identity_resolution/flow.py --config settings my.yaml \
        --data s3://bucket/a/,s3://bucket/b.parquet --output s3://bucket/out

A settings file (settings.py; `settings_files/` has two) names the columns, how each is
compared, the blocking rules and the link type. With no --data the flow generates --records
people records (generate.py) and uses settings_files/people.yaml.

    start -> prepare (foreach shard) -> gather -> split_compare -> compare (foreach partition)
          -> train -> split_score -> score (foreach partition) -> cluster -> end

- prepare: normalizes one shard, and puts one row per (record, blocking rule) into the
  partition its block hashes to: one Arrow IPC file per task, its batches by partition
  (shuffle.py), so a compare task reads only its own partition's batches.
- gather: the global tables, all small: term frequencies, the giant blocks, a random sample of
  records for u, the truth's pair count. No records pass through it, and the counts behind
  the tables are merged by Ray tasks over hash groups of their keys (gather_counts).
- compare: the partition's candidate pairs and their comparison vectors; the counts of each
  distinct vector (what EM needs), and u counts from random pairs of the sample.
- train: u from the random pairs, m and the share of matches by EM over the counted vectors of
  all partitions (or a saved model: --model). Writes model.json.
- score: match weight, probability and per-field weights of each of its partition's pairs.
- cluster: connected components of the pairs at or above the threshold, as Ray tasks over
  hash partitions of the ids (components.py), streamed into clusters.parquet: no task holds
  more than one partition.
- end: streams pairs.parquet one score task's pairs at a time; writes model.json and
  metrics.json, with a card; removes the shuffle's files.
"""

import json
import math
import os
import time

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rayflow import Config, FlowSpec, Parameter, Step, card, config_expr, current, step
from rayflow.cards import Markdown, Table, VegaChart
from rayflow.exceptions import ParameterError

try:  # imported from the repository root (tests, benchmarks)
    from examples.identity_resolution import components as cc
    from examples.identity_resolution import generate as dataset
    from examples.identity_resolution import model as er
    from examples.identity_resolution import settings as cfg
    from examples.identity_resolution import shuffle as sh
except ImportError:  # loaded by rayflow with this folder on sys.path (a cluster ships only it)
    import components as cc
    import generate as dataset
    import model as er
    import settings as cfg
    import shuffle as sh

HERE = os.path.dirname(os.path.abspath(__file__))
PEOPLE_SETTINGS = os.path.join(HERE, "settings_files", "people.yaml")


def parse_settings_config(text: str) -> dict:
    """The settings Config's parser: a bad file stops the run before any step, with one
    message naming the key and the column."""
    try:
        return cfg.parse_settings(text).to_dict()
    except cfg.SettingsError as exc:
        raise ParameterError(str(exc)) from None


class InputsType:
    """--data: comma-separated inputs. Checked against the settings while the run is set up:
    each file's columns and types, before any step runs."""

    name = "inputs"

    def __call__(self, raw):
        from rayflow.config import config_values_of

        settings = cfg.parse_settings(dict(config_values_of(IdentityResolutionFlow)["settings"]
                                           .to_dict()), where="the settings")
        urls = [u.strip() for u in str(raw).split(",") if u.strip()] or list(settings.inputs)
        if not urls:
            return ""
        try:
            cfg.check_inputs(settings, urls)
        except cfg.SettingsError as exc:
            raise ParameterError(f"{exc}") from None
        return ",".join(urls)


def read_artifact(pathspec: str, name: str):
    """One artifact of one finished task of this run, read from the datastore (a partition's
    piece, not the whole task)."""
    flow, run, step_name, task_id = pathspec.split("/")
    key = (flow, run, step_name)
    steps = _STEPS.setdefault(current.run_id, {})
    if key not in steps:
        steps[key] = Step(f"{flow}/{run}/{step_name}")
    return steps[key][task_id][name].data


_STEPS: dict = {}


def gather_counts(prepared: list[str], setup: cfg.Settings, groups: int):
    """The run's giant blocks (over max_block rows in all) and term frequencies, merged by
    `groups` Ray tasks that each take one hash group of every shard's counts: this task
    holds one shard's counts at a time, and no task all of them. What comes back is small:
    the giant blocks, and the values two records or more share."""
    import ray

    merge = ray.remote(num_cpus=1, max_retries=3)(er.gather_group)
    pieces: list[list] = [[] for _ in range(groups * 3)]
    for path in prepared:
        cuts = (er.block_groups(read_artifact(path, "block_counts"), groups),
                er.tf_groups(read_artifact(path, "tf_counts"), groups),
                er.truth_groups(read_artifact(path, "truth_counts"), groups))
        for kind, cut in enumerate(cuts):
            for g, piece in enumerate(cut):
                pieces[g * 3 + kind].append(ray.put(piece))
    found = ray.get([merge.remote(setup.max_block, setup.link_type, len(prepared),
                                  *pieces[g * 3], *pieces[g * 3 + 1], *pieces[g * 3 + 2])
                     for g in range(groups)])
    giant = np.sort(np.concatenate([np.zeros(0, np.uint64), *(f[0] for f in found)]))
    return (giant, er.tf_finish([f[1] for f in found], setup), sum(f[2] for f in found),
            sum(f[3] for f in found))


class IdentityResolutionFlow(FlowSpec):
    """Block, compare, learn, score and cluster records as a settings file says."""

    settings = Config("settings", default=PEOPLE_SETTINGS, parser=parse_settings_config)
    data = Parameter("data", default="", type=InputsType(),
                     help="inputs, comma-separated: Parquet or CSV files or folders, local or "
                          "s3:// (default: the settings' inputs; none: generate --records)")
    truth = Parameter("truth", default="",
                      help="Parquet or CSV of (id, entity) for the metrics, with a column "
                           "named source when ids repeat across inputs; default: "
                           "truth.parquet beside the first input, if there is one")
    model = Parameter("model", default="",
                      help="a model.json to score with instead of learning one")
    records = Parameter("records", default=200_000, help="records to generate when no --data")
    seed = Parameter("seed", default=0, help="generator and sampling seed")
    partitions = Parameter("partitions", default=0,
                           help="compare tasks (default: the settings' partitions, else one "
                                "per 60,000 records)")
    cluster_tasks = Parameter("cluster_tasks", default=0,
                              help="tasks of the connected components (default: one per "
                                   "400,000 matched pairs or 1,600,000 records)")
    # The settings' value is the default itself (not a -1 meaning "the settings'"): the
    # run's parameters, its report and `rayflow show` name the threshold the run used.
    threshold = Parameter("threshold", type=float, default=config_expr(
                              "cfg.parse_settings(settings.to_dict()).threshold"),
                          help="match probability for a match (default: the settings')")
    output = Parameter("output", default="out", help="output folder (local or s3://)")

    @property
    def setup(self) -> cfg.Settings:
        """The parsed settings (kept as the settings Config, a plain dict, in the run)."""
        return cfg.parse_settings(self.settings.to_dict(), where="the settings")

    @step
    def start(self):
        """Find the inputs (generating one when none was given) and cut them into shards."""
        started = time.time()
        inputs = self.data.split(",") if self.data else [self._generate()]
        self.generate_seconds = time.time() - started
        self.started = time.time()
        setup = self.setup
        self.cut = self.threshold
        self.inputs = inputs
        files = [cfg.list_input_files(url) for url in inputs]
        self.id_type = _id_type(setup, files)
        drops = [cfg.repeated_rows(fs, setup.unique_id) if setup.unique_id and
                 setup.duplicate_ids == "keep_first" else [None] * len(fs) for fs in files]
        self.shards = [{"source": s, "url": f, "index": i, "drop": d} for i, (s, f, d) in
                       enumerate((s, f, d) for s, fs in enumerate(files)
                                 for f, d in zip(fs, drops[s]))]
        # Partitions grow with the data, so a compare task's share stays the same size.
        self.n_partitions = self.partitions or setup.partitions or max(
            4, -(-sum(cfg.estimate_rows(sh["url"]) for sh in self.shards) // 60_000))
        self.sample_per_shard = -(-setup.u_sample_records // len(self.shards))
        self.truth_url = self.truth or _truth_beside(inputs[0])
        self.next(self.prepare, foreach="shards")

    def _generate(self) -> str:
        out = os.path.join(HERE, "data", f"records-{self.records}-seed-{self.seed}")
        table, truth = dataset.generate(self.records, self.seed)
        dataset.write_dataset(table, truth, out)
        print(f"generated {table.num_rows:,} records into {out}")
        return out

    @step
    def prepare(self):
        """Normalize one shard and cut it into per-partition pieces (the shuffle's map side)."""
        shard = self.input
        table = cfg.read_table(shard["url"])
        truth = None
        if self.truth_url and self.setup.unique_id:
            truth = er.truth_of_source(_read_truth(self.truth_url, table[self.setup.unique_id]),
                                       shard["source"], self.setup.source_names)
        prepared = er.prepare_shard(table, self.setup, shard["source"], shard["index"],
                                    self.n_partitions, self.sample_per_shard, truth, self.seed,
                                    len(self.shards), shard["drop"], self.id_type)
        # One file a task, its batches by partition (shuffle.py): not one artifact a piece.
        self.shuffle = sh.write_pieces(
            prepared.pieces, f"{sh.shuffle_folder(self.output, current.run_id)}/"
                             f"shard-{shard['index']:05d}.arrow")
        self.ids = prepared.ids
        self.tf_counts = prepared.tf_counts
        self.block_counts = prepared.block_counts
        self.sample = prepared.sample
        self.truth_counts = prepared.truth_counts
        self.records_in = prepared.records
        self.source = shard["source"]
        self.task_path = current.pathspec
        self.next(self.gather)

    @step
    def gather(self, inputs):
        """The global tables (all small) from every shard; the pieces stay where they are."""
        self.merge_artifacts(inputs, include=["started", "generate_seconds",
                                              "n_partitions", "cut", "truth_url", "inputs"])
        setup = self.setup
        self.records_in = sum(inp.records_in for inp in inputs)
        self.giant, self.tf, self.true_pairs, self.truth_pairs = gather_counts(
            [inp.task_path for inp in inputs], setup,
            er.block_group_count(self.records_in * len(setup.blocking)))
        self.sample = pa.concat_tables([inp.sample for inp in inputs])
        self.prepared = [inp.task_path for inp in inputs]
        self.shuffles = [inp.shuffle for inp in inputs]
        per_source = [0] * len(self.inputs)
        for inp in inputs:
            per_source[inp.source] += inp.records_in
        self.all_pairs = er.total_pairs(per_source, setup.link_type)
        self.next(self.split_compare)

    @step
    def split_compare(self):
        """A join may not also split (Metaflow's rule), so the split over partitions is here."""
        self.partition_ids = list(range(self.n_partitions))
        self.next(self.compare, foreach="partition_ids")

    @step
    def compare(self):
        """Candidate pairs of one partition and their comparison vectors."""
        p = self.input
        part = sh.read_partition(self.shuffles, p)
        result = er.compare_partition(part, self.giant, self.setup, self.tf, self.sample,
                                      self.setup.u_sample_pairs // self.n_partitions,
                                      (self.seed, p))
        self.pairs = result.pairs
        self.patterns, self.counts = result.patterns, result.counts
        self.u_counts = result.u_counts
        self.rule_pairs, self.rule_true = result.rule_pairs, result.rule_true
        self.rule_cut = result.rule_cut
        self.compare_seconds = result.seconds
        self.block_hist = result.block_hist
        self.candidates = result.pairs.num_rows
        self.task_path = current.pathspec
        # For the card's throughput over time: when this partition's records were compared.
        self.progress = [("compare", time.time(), part.num_rows)]
        self.next(self.train)

    @step
    def train(self, inputs):
        """u from random pairs, m and the share of matches by EM -- or a saved model."""
        self.merge_artifacts(inputs, include=["started", "generate_seconds",
                                              "n_partitions", "cut", "truth_url", "inputs",
                                              "records_in", "true_pairs", "prepared",
                                              "all_pairs", "truth_pairs"])
        setup = self.setup
        if self.model:
            self.trained = er.load_model(self.model, setup)
            print(f"scoring with the saved model {self.model}")
        else:
            self.trained = er.train([inp.patterns for inp in inputs],
                                    [inp.counts for inp in inputs],
                                    [inp.u_counts for inp in inputs], setup,
                                    self.all_pairs)
        self.compared = [inp.task_path for inp in inputs]
        self.candidates = sum(inp.candidates for inp in inputs)
        self.rule_pairs = sum(inp.rule_pairs for inp in inputs)
        self.rule_true = sum(inp.rule_true for inp in inputs)
        self.rule_cut = sum(inp.rule_cut for inp in inputs)
        self.block_hist = sum(inp.block_hist for inp in inputs)
        self.compare_seconds = sum(inp.compare_seconds for inp in inputs)
        self.progress = sorted(p for inp in inputs for p in inp.progress)
        self.next(self.split_score)

    @step
    def split_score(self):
        self.partition_ids = list(range(len(self.compared)))
        self.next(self.score, foreach="partition_ids")

    @step
    def score(self):
        """Match weight, probability and per-field weights of one partition's pairs."""
        pairs = read_artifact(self.compared[self.input], "pairs")
        scored = er.score_pairs(pairs, self.trained, self.setup)
        prob = scored["match_probability"]
        kept = scored.filter(pc.greater_equal(prob, self.setup.keep_pairs_above))
        self.kept = kept.select([c for c in kept.column_names if not c.startswith("__")])
        self.edges = scored.filter(pc.greater_equal(prob, self.cut)).select(
            ["__rid_l", "__rid_r"])
        self.matched = self.edges.num_rows
        weight = np.clip(scored["match_weight"].to_numpy(), er.alg.SCORE_BINS[0],
                         er.alg.SCORE_BINS[-1] - 1e-9)
        self.score_hist = np.histogram(weight, bins=er.alg.SCORE_BINS)[0]
        # Pairs at or above each probability in PR_BINS, all and true ones: the card's
        # precision and recall against the threshold, without keeping every pair.
        prob = prob.to_numpy()
        same = scored["__truth_same"].to_numpy(zero_copy_only=False)
        self.pr_counts = np.stack([np.histogram(prob, bins=PR_BINS)[0],
                                   np.histogram(prob[same], bins=PR_BINS)[0]])
        self.scored = (time.time(), scored.num_rows)
        # The kept pair closest to the threshold, for the card's "closest call".
        close = pc.abs(pc.subtract(self.kept["match_probability"], self.cut))
        self.closest = self.kept.take(pc.sort_indices(close)[:1])
        self.task_path = current.pathspec
        self.next(self.cluster)

    @step
    def cluster(self, inputs):
        """Connected components of the matched pairs over every record's id, as Ray tasks
        over hash partitions (components.py): this task hands over one score or prepare
        task's table at a time and streams the clusters into clusters.parquet."""
        self.merge_artifacts(inputs, include=["started", "generate_seconds", "cut",
                                              "truth_url", "inputs", "records_in",
                                              "true_pairs", "prepared", "trained",
                                              "candidates", "rule_pairs", "rule_true",
                                              "rule_cut", "block_hist", "compare_seconds",
                                              "truth_pairs"])
        self.score_tasks = [inp.task_path for inp in inputs]
        self.matched_pairs = sum(inp.matched for inp in inputs)
        self.progress = sorted([*inputs[0].progress,
                                *(("score", *inp.scored) for inp in inputs)])
        self.pr_counts = sum(inp.pr_counts for inp in inputs)
        self.score_hist = sum(inp.score_hist for inp in inputs)
        closest = [inp.closest for inp in inputs if inp.closest.num_rows]
        self.closest = _closest(closest, self.cut)
        jobs = cc.Components(self.cluster_tasks or cc.task_count(self.matched_pairs,
                                                                 self.records_in))
        for path in self.score_tasks:
            edges = read_artifact(path, "edges")
            jobs.add_edges(edges["__rid_l"].to_numpy(), edges["__rid_r"].to_numpy())
        for path in self.prepared:
            jobs.add_records(read_artifact(path, "ids"))
        out = self.output.rstrip("/")
        fs, root = fsspec.core.url_to_fs(out)
        fs.makedirs(root, exist_ok=True)
        self.clusters_url = f"{out}/clusters.parquet"
        totals = {"records": 0, "clusters": 0, "predicted_pairs": 0, "both_pairs": 0}
        with ParquetStream(self.clusters_url) as sink:
            for table, counts in jobs.clusters():
                sink.write(named_sources(table, self.setup.source_names))
                totals = {key: totals[key] + counts[key] for key in totals}
        self.cluster_counts = totals
        self.cc_tasks, self.cc_rounds = jobs.k, jobs.rounds
        self.next(self.end)

    @card(type="blank", id="results")
    @step
    def end(self):
        """Write the pairs (one score task's at a time), the model and the metrics; score the
        clusters against the truth if there is one; summarize."""
        out = self.output.rstrip("/")
        setup = self.setup
        self.pairs_url = f"{out}/pairs.parquet"
        with ParquetStream(self.pairs_url) as sink:
            for path in self.score_tasks:
                sink.write(named_sources(read_artifact(path, "kept"), setup.source_names))
        self.model_url = er.save_model(self.trained, f"{out}/model.json")
        sh.remove([read_artifact(path, "shuffle") for path in self.prepared])
        seconds = time.time() - self.started
        counts = self.cluster_counts
        records = counts["records"]
        self.metrics = {
            "records": records, "clusters": counts["clusters"],
            "candidate_pairs": int(self.candidates), "matched_pairs": int(self.matched_pairs),
            "seconds": round(seconds, 3), "records_per_second": round(records / seconds),
            "match_probability_threshold": self.cut,
            "lambda": self.trained["lambda"],
        }
        if self.truth_pairs or counts["predicted_pairs"]:
            self.metrics.update(cc.scores(self.truth_pairs, counts["predicted_pairs"],
                                          counts["both_pairs"]))
        self.blocking_report = blocking_report(setup, self.rule_pairs, self.rule_true,
                                               self.true_pairs, self.rule_cut)
        self.metrics["blocking"] = self.blocking_report
        self.metrics["pairs_not_compared_cut"] = int(self.rule_cut.sum())
        self.metrics_url = f"{out}/metrics.json"
        with fsspec.open(self.metrics_url, "w") as fh:
            json.dump(self.metrics, fh, indent=2)
        results_card(current.card["results"], self.metrics, self.trained, setup,
                     self.score_hist, self.block_hist, self.closest, self.cut)
        progress_charts(current.card["results"], self.pr_counts, self.true_pairs,
                        self.progress, self.started, self.cut)
        print(summary(self.metrics, out))


class ParquetStream:
    """One Parquet file written a table at a time (local or s3://): what it holds at once is
    one table. An empty stream writes nothing until closed; then an empty file if it must."""

    def __init__(self, url: str):
        self.url, self.writer, self.fh, self.schema = url, None, None, None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = table.schema
            self.fh = fsspec.open(self.url, "wb").open()
            self.writer = pq.ParquetWriter(self.fh, self.schema)
        if table.schema != self.schema:
            table = table.cast(self.schema)
        if table.num_rows:
            self.writer.write_table(table)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
            self.fh.close()


def _closest(tables: list, threshold: float) -> pa.Table | None:
    """Of each score task's closest call, the closest (the first on a tie, in task order)."""
    if not tables:
        return None
    both = pa.concat_tables(tables, promote_options="permissive")
    close = pc.abs(pc.subtract(both["match_probability"], threshold))
    return both.take(pc.sort_indices(close)[:1])


def _id_type(setup, files: list[list[str]]):
    """The one type the records' own ids take in the outputs: theirs when every input's is
    the same, else strings (a CSV's ids are always strings)."""
    if not setup.unique_id:
        return pa.int64()
    types = set()
    for fs in files:
        for f in fs[:1]:
            typ = cfg.read_schema(f).field(setup.unique_id).type
            if pa.types.is_dictionary(typ):
                typ = typ.value_type
            types.add(pa.string() if pa.types.is_large_string(typ) else typ)
    return types.pop() if len(types) == 1 else pa.string()


def _truth_beside(url: str) -> str:
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.isdir(root):
        return ""
    path = f"{root.rstrip('/')}/truth.parquet"
    return fs.unstrip_protocol(path) if fs.exists(path) else ""


def _read_truth(url: str, ids) -> pa.Table:
    """The truth's (id, entity) rows of these ids, with the `source` column too when it has
    one. A Parquet truth is scanned with a filter, so a shard's task does not hold the whole
    truth of a large dataset."""
    if not cfg.is_csv(url):
        import pyarrow.dataset as pds

        fs, path = fsspec.core.url_to_fs(url)
        data = pds.dataset(path, filesystem=fs, format="parquet")
        names = data.schema.names
        rest = [n for n in names if n != "source"]
        if len(rest) < 2:
            raise ValueError(f"The truth file {url!r} needs two columns: id and entity "
                             f"(and optionally source).")
        id_col, entity_col = rest[:2]
        columns = (["source"] if "source" in names else []) + [id_col, entity_col]
        try:
            wanted = pc.cast(ids, data.schema.field(id_col).type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            wanted = None  # ids of another type than the truth's: read it all
        if wanted is not None:
            # The range lets the scan skip row groups whose statistics lie outside it: a
            # shard's ids are often a run of the truth's, and the truth of ten million
            # records is otherwise read whole by each of its 200 shards' tasks.
            low, high = pc.min_max(wanted).values()
            keep = pc.field(id_col).isin(wanted)
            if low.is_valid:
                keep = (pc.field(id_col) >= low) & (pc.field(id_col) <= high) & keep
            return data.to_table(columns=columns, filter=keep)
        return data.to_table(columns=columns)
    table = cfg.read_table(url)
    if len([n for n in table.column_names if n != "source"]) < 2:
        raise ValueError(f"The truth file {url!r} needs two columns: id and entity "
                         f"(and optionally source).")
    return table


def named_sources(table: pa.Table, names) -> pa.Table:
    """The source columns as the settings' source_names, when it gives them (else 0, 1...)."""
    if not names:
        return table
    for i, col in enumerate(table.column_names):
        if col in ("source", "source_l", "source_r"):
            table = table.set_column(i, col, pc.take(pa.array(list(names)), table[col]))
    return table


def blocking_report(setup, rule_pairs, rule_true, true_pairs: int, rule_cut) -> list[dict]:
    """Pairs each blocking rule made (each pair counted under the rule that owns it), the
    pairs it describes that its cut blocks' windows left out (max_block), and, with a
    truth, the share of all true pairs they cover."""
    rows, covered = [], 0
    for name, n, t, c in zip(setup.rule_names(), rule_pairs, rule_true, rule_cut):
        covered += int(t)
        row = {"rule": name, "pairs": int(n), "not_compared_cut": int(c)}
        if true_pairs:
            row.update({"true_pairs": int(t), "cumulative_recall": covered / true_pairs})
        rows.append(row)
    return rows


def results_card(card_, m: dict, trained: dict, setup, score_hist, block_hist,
                 closest: pa.Table | None, threshold: float) -> None:
    """The end step's card: metrics, the blocking report, the learned weights, a chart of
    match weights, and the evidence of the closest calls."""
    card_.append(Markdown(f"# Identity resolution\n{m['records']:,} records became "
                          f"**{m['clusters']:,} clusters** in {m['seconds']:.1f} s "
                          f"(match probability threshold {threshold:g})."))
    card_.append(Table([[k, f"{v:.4f}" if isinstance(v, float) else f"{v:,}"]
                        for k, v in m.items() if not isinstance(v, list)],
                       headers=["metric", "value"]))
    card_.append(Markdown("## Blocking"))
    card_.append(Table([[r["rule"], f"{r['pairs']:,}", f"{r['not_compared_cut']:,}",
                         f"{r['cumulative_recall']:.4f}" if "cumulative_recall" in r else "–"]
                        for r in m["blocking"]],
                       headers=["rule", "pairs", "left out by max_block", "recall so far"]))
    card_.append(Markdown("## Learned weights (log2 m/u per level)"))
    rows = []
    for comp, bf in zip(setup.comparisons, er.bayes_factors(trained)):
        rows += [[comp.column, level, f"{w:+.2f}"] for level, w in zip(comp.level_names, bf)]
    card_.append(Table(rows, headers=["column", "level", "weight"]))
    edges = er.alg.SCORE_BINS
    cut_weight = math.log2(threshold / (1 - threshold)) if 0 < threshold < 1 else 0.0
    card_.append(VegaChart({
        "title": "Candidate pairs by match weight (the threshold is the rule)",
        "width": 520, "height": 220,
        "layer": [
            {"data": {"values": [{"weight": float(edges[i]), "pairs": int(c)}
                                 for i, c in enumerate(score_hist)]},
             "mark": "bar", "encoding": {"x": {"field": "weight", "type": "quantitative"},
                                         "y": {"field": "pairs", "type": "quantitative"}}},
            {"data": {"values": [{"weight": cut_weight}]},
             "mark": {"type": "rule", "color": "#d64545"},
             "encoding": {"x": {"field": "weight", "type": "quantitative"}}}]}))
    bins = er.alg.BLOCK_BINS
    labels = [f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" if hi < 1 << 62 else f"{lo}+"
              for lo, hi in zip(bins[:-1], bins[1:])]
    card_.append(VegaChart({
        "title": "Blocks by size (records sharing a blocking key; over max_block, split)",
        "width": 520, "height": 220, "data": {"values": [{"size": lab, "blocks": int(c)}
                                           for lab, c in zip(labels, block_hist)]},
        "mark": "bar", "encoding": {"x": {"field": "size", "type": "ordinal", "sort": labels},
                                    "y": {"field": "blocks", "type": "quantitative"}}}))
    if closest is not None and closest.num_rows:
        row = closest.to_pylist()[0]
        card_.append(Markdown("## The closest call, field by field"))
        card_.append(Table([[r["field"], r["level"], f"{r['weight']:+.2f}"]
                            for r in er.explain(row, trained, setup)],
                           headers=["field", "level", "weight"]))


# Match probabilities at which the card's precision and recall are counted (pairs below the
# first are never kept as matches).
PR_BINS = np.concatenate([np.linspace(0.0, 0.9, 19), np.linspace(0.91, 1.0, 10), [1.0 + 1e-9]])


def pr_curve(pr_counts, true_pairs: int) -> list[dict]:
    """Precision and recall of the pairs at or above each threshold in PR_BINS (recall of
    all the truth's pairs: pairs blocking never made count as missed)."""
    above = np.cumsum(pr_counts[:, ::-1], axis=1)[:, ::-1]  # at or above each bin's start
    rows = []
    for i, t in enumerate(PR_BINS[:-1]):
        n, good = int(above[0][i]), int(above[1][i])
        if n:
            rows.append({"threshold": round(float(t), 3), "measure": "precision",
                         "value": round(good / n, 4)})
        rows.append({"threshold": round(float(t), 3), "measure": "recall",
                     "value": round(good / true_pairs, 4)})
    return rows


def progress_charts(card_, pr_counts, true_pairs: int, progress: list, started: float,
                    threshold: float) -> None:
    """Precision and recall against the threshold (with a truth), and the records compared
    and pairs scored over the run's time: the slope is the throughput."""
    if true_pairs:
        card_.append(VegaChart({
            "title": "Precision and recall against the match probability threshold",
            "width": 520, "height": 220,
            "layer": [
                {"data": {"values": pr_curve(pr_counts, true_pairs)}, "mark": "line",
                 "encoding": {"x": {"field": "threshold", "type": "quantitative",
                                    "title": "match probability threshold"},
                              "y": {"field": "value", "type": "quantitative",
                                    "scale": {"domain": [0, 1]}},
                              "color": {"field": "measure", "type": "nominal"}}},
                {"data": {"values": [{"threshold": threshold}]},
                 "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#333"},
                 "encoding": {"x": {"field": "threshold", "type": "quantitative"}}}]}))
    rows, done = [], {}
    for stage, at, n in progress:
        done[stage] = done.get(stage, 0) + n
        what = "records compared" if stage == "compare" else "pairs scored"
        rows.append({"seconds": round(at - started, 2), "what": what, "count": done[stage]})
    if rows:
        card_.append(VegaChart({
            "title": "Throughput over time (records compared, pairs scored; the slope is "
                     "the rate)", "width": 520, "height": 220, "data": {"values": rows},
            "mark": {"type": "line", "point": True, "interpolate": "step-after"},
            "encoding": {"x": {"field": "seconds", "type": "quantitative",
                               "title": "seconds since the run started"},
                         "y": {"field": "count", "type": "quantitative"},
                         "color": {"field": "what", "type": "nominal"}}}))


def summary(m: dict, out: str) -> str:
    lines = [
        f"records            {m['records']:,} -> {m['clusters']:,} clusters",
        f"candidate pairs    {m['candidate_pairs']:,} ({m['matched_pairs']:,} matched)",
        f"throughput         {m['records_per_second']:,} records/s over {m['seconds']:.1f} s",
    ]
    if "f1" in m:
        lines.append(f"quality            precision {m['precision']:.4f}  recall "
                     f"{m['recall']:.4f}  F1 {m['f1']:.4f}")
    for r in m["blocking"]:
        recall = f", recall so far {r['cumulative_recall']:.4f}" if "cumulative_recall" in r \
            else ""
        cut = f", {r['not_compared_cut']:,} left out by max_block" if r["not_compared_cut"] \
            else ""
        lines.append(f"blocking rule      {r['rule']}: {r['pairs']:,} pairs{cut}{recall}")
    if m.get("pairs_not_compared_cut"):
        lines.append(f"max_block          {m['pairs_not_compared_cut']:,} pairs of cut blocks "
                     f"not compared (max_block: none compares them)")
    lines.append(f"written            {out}/clusters.parquet, pairs.parquet, model.json, "
                 f"metrics.json")
    return "\n".join(lines)


if __name__ == "__main__":
    IdentityResolutionFlow()
