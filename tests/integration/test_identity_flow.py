"""The identity-resolution flow, end to end on a real Ray: generated data (local and S3
datastores), a CSV under another schema linked with a saved model, and the messages for bad
settings and bad input from the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from rayflow import Run, namespace
from rayflow.cards import get_cards

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOW = os.path.join(ROOT, "examples", "identity_resolution", "flow.py")
SETTINGS = os.path.join(ROOT, "examples", "identity_resolution", "settings_files",
                        "people.yaml")


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("records")
    subprocess.run([sys.executable, "-m", "examples.identity_resolution.generate",
                    "--records", "4000", "--seed", "7", "--out", str(out),
                    "--shard-rows", "1500"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    return str(out)


@pytest.mark.parametrize("store", ["local", "s3"])
def test_identity_resolution_flow(run_flow, datastore, records_dir, tmp_path, store, request):
    namespace(None)
    url = request.getfixturevalue("s3_url") if store == "s3" else datastore
    output = str(tmp_path / "out")
    data = records_dir
    if store == "s3":  # the records (and their truth) are read from S3 too
        import fsspec

        data = f"{url}-input"
        fs, root = fsspec.core.url_to_fs(data)
        for name in sorted(os.listdir(records_dir)):
            fs.put(os.path.join(records_dir, name), f"{root}/{name}")
    s = run_flow(FLOW, {"data": data, "partitions": 4, "output": output},
                 datastore_url=url)
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=url)
    metrics = run.data.metrics
    assert metrics["records"] == 4000 and metrics["f1"] >= 0.9, metrics
    assert [r["rule"] for r in metrics["blocking"]][1] == "email"
    assert metrics["blocking"][-1]["cumulative_recall"] >= 0.95
    # The threshold parameter is the value the run used (the settings'), not a placeholder.
    assert run.parameters["threshold"] == metrics["match_probability_threshold"] == 0.9
    (card,) = get_cards(run["end"].task, id="results")
    html = card.get()
    assert "Precision and recall against the match probability threshold" in html
    assert "Throughput over time" in html and "pairs scored" in html
    text = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    assert not re.search(r"\d\.\d{5,}", text), "a number printed with too many digits"
    clusters = pq.read_table(f"{output}/clusters.parquet")
    assert clusters.num_rows == 4000
    assert {"source", "id", "cluster_id", "cluster_size"} <= set(clusters.column_names)
    pairs = pq.read_table(f"{output}/pairs.parquet")
    assert {"id_l", "id_r", "match_weight", "match_probability", "w_first_name",
            "g_dob"} <= set(pairs.column_names)
    # A pair's weight is the prior plus its fields' weights (no group cap reached here).
    model = json.loads(open(f"{output}/model.json").read())
    assert model["format"] == "rayflow-identity-model/1" and len(model["m"]) == 7
    # The shuffle kept partitions apart: 3 shards, each one file of its 4 partitions' batches
    # (not 4 artifacts), 4 compare tasks; the end step removed the files.
    assert len(list(run["prepare"])) == 3 and len(list(run["compare"])) == 4
    prepare = next(iter(run["prepare"]))
    assert not any(a.id.startswith("part_") for a in prepare)
    assert len(prepare["shuffle"].data["batches"]) == 4
    assert not os.path.exists(os.path.join(output, ".shuffle", run.id))


def test_link_a_csv_with_a_saved_model(run_flow, datastore, records_dir, tmp_path,
                                       monkeypatch):
    """Train on the generated records, then link new records (a CSV with string ids) to
    them with the saved model (incremental linking)."""
    namespace(None)
    first = str(tmp_path / "first")
    s = run_flow(FLOW, {"data": records_dir, "partitions": 2, "output": first})
    assert s.successful, s.failures
    table = pq.read_table(os.path.join(records_dir, "part-00000.parquet"))
    new = table.slice(0, 600).set_column(0, "record_id", pc.binary_join_element_wise(
        "new-", pc.cast(table["record_id"].slice(0, 600), pa.string()), ""))
    csv = str(tmp_path / "new.csv")
    pcsv.write_csv(new, csv)
    text = open(SETTINGS).read().replace("link_type: dedupe",
                                         "link_type: link\nsource_names: [crm, signups]")
    linked = tmp_path / "link.yaml"
    linked.write_text(text)
    monkeypatch.setenv("METAFLOW_FLOW_CONFIG", json.dumps({"settings": str(linked)}))
    out = str(tmp_path / "second")
    s = run_flow(FLOW, {"data": f"{records_dir},{csv}", "model": f"{first}/model.json",
                        "partitions": 2, "output": out})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    assert run.data.trained["m"] == json.loads(open(f"{first}/model.json").read())["m"]
    pairs = pq.read_table(f"{out}/pairs.parquet")
    assert pairs.num_rows and pc.all(pc.not_equal(pairs["source_l"], pairs["source_r"])).as_py()
    # Each new record is a copy of an old one: it must land in that record's cluster.
    clusters = pq.read_table(f"{out}/clusters.parquet").to_pylist()
    cluster_of = {(r["source"], str(r["id"])): r["cluster_id"] for r in clusters}
    joined = sum(cluster_of[("signups", f"new-{i}")] == cluster_of[("crm", str(i))]
                 for i in range(600))
    assert joined >= 590, joined


def _cli(args, tmp_path):
    env = {**os.environ, "RAYFLOW_HOME": str(tmp_path / "home")}
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "rayflow"), "run",
                           FLOW, *args, "--datastore", str(tmp_path / "ds")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_bad_settings_and_bad_input_stop_before_any_step(records_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(SETTINGS).read().replace("comparison: date", "comparison: dates"))
    p = _cli(["--config", "settings", str(bad), "--data", records_dir], tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "comparisons[2] (column 'dob'): comparison 'dates' is not known. Did you mean " \
           "'date'?" in out, out
    assert "Traceback" not in out and "Starting an embedded Ray" not in out, out
    other = tmp_path / "other.csv"
    t = pq.read_table(os.path.join(records_dir, "part-00000.parquet"))
    pcsv.write_csv(t.rename_columns([{"dob": "birth_date"}.get(c, c)
                                     for c in t.column_names]), other)
    p = _cli(["--data", str(other)], tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert f"Input '{other}' has no column 'dob'" in out and "birth_date" in out, out
    assert "Traceback" not in out and "Starting an embedded Ray" not in out, out


def _single_task_clusters(run) -> pa.Table:
    """Today's single-task result on the run's own records and matched pairs: model.cluster
    over every prepare task's ids and every score task's edges."""
    from examples.identity_resolution import model as er

    ids = er.concat_ids([t.data.ids for t in run["prepare"]])
    return er.cluster(ids, [t.data.edges for t in run["score"]])


def _canonical(table: pa.Table) -> pa.Table:
    cols = ["source", "id", "cluster_id", "cluster_size"]
    return table.select(cols).sort_by([("source", "ascending"), ("id", "ascending")])


def test_partitioned_clusters_equal_the_single_task_result(run_flow, datastore, records_dir,
                                                           tmp_path):
    """Five tasks for the components (more than the data needs): the clusters and the F1
    are those of the single-task union-find, bit for bit."""
    from examples.identity_resolution import model as er

    namespace(None)
    out = str(tmp_path / "out")
    s = run_flow(FLOW, {"data": records_dir, "partitions": 3, "cluster_tasks": 5,
                        "output": out})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    single = _single_task_clusters(run)
    got = pq.read_table(f"{out}/clusters.parquet")
    assert got.schema.field("source").type == pa.int8()
    assert _canonical(got).equals(_canonical(single))
    assert run["cluster"].task.data.cc_tasks == 5
    metrics = run.data.metrics
    assert metrics["f1"] == er.metrics(single)["f1"]
    assert metrics["clusters"] == pc.count_distinct(single["cluster_id"]).as_py()


def test_link_mode_with_reused_ids_across_inputs(run_flow, datastore, tmp_path, monkeypatch):
    """FEBRL4-like: two inputs numbering their records alike, a truth with a source column,
    small blocks (many cut into windows): each pair once, left from the first input; the
    clusters are the single-task result; the F1 is the one counted over (input, id)."""
    from collections import Counter

    from examples.identity_resolution import components as cc
    from tests.unit.test_identity_scale import febrl4_like

    namespace(None)
    inputs, truth = febrl4_like(2400, seed=11)
    paths = []
    for i, t in enumerate(inputs):
        paths.append(str(tmp_path / f"in{i}.parquet"))
        pq.write_table(t, paths[-1])
    names = ["crm", "shop"]
    truth = truth.set_column(0, "source", pa.array([names[s] for s in
                                                    truth["source"].to_pylist()]))
    pq.write_table(truth, str(tmp_path / "truth.parquet"))
    text = open(SETTINGS).read().replace("link_type: dedupe", "link_type: link_and_dedupe")
    linked = tmp_path / "link.yaml"
    linked.write_text(text + "\nsource_names: [crm, shop]\nmax_block: 3\n")
    monkeypatch.setenv("METAFLOW_FLOW_CONFIG", json.dumps({"settings": str(linked)}))
    out = str(tmp_path / "out")
    s = run_flow(FLOW, {"data": ",".join(paths), "truth": str(tmp_path / "truth.parquet"),
                        "partitions": 3, "cluster_tasks": 2, "output": out})
    assert s.successful, s.failures
    pairs = pq.read_table(f"{out}/pairs.parquet").to_pylist()
    keys = [((p["source_l"], p["id_l"]), (p["source_r"], p["id_r"])) for p in pairs]
    assert len(pairs) > 500 and len(set(keys)) == len(keys)
    assert not {(b, a) for a, b in keys} & set(keys)
    assert all(p["source_l"] <= p["source_r"] for p in pairs)
    run = Run(s.pathspec, datastore=datastore)
    got = pq.read_table(f"{out}/clusters.parquet")
    single = _single_task_clusters(run)
    single = single.set_column(0, "source", pa.array([names[i] for i in
                                                      single["source"].to_pylist()]))
    assert _canonical(got).equals(_canonical(single))
    want = {(s_, i): e for s_, i, e in zip(*(truth[c].to_pylist() for c in truth.column_names))}
    pred = {(r["source"], r["id"]): r["cluster_id"] for r in got.to_pylist()}
    count = Counter
    pairs_of = lambda c: sum(n * (n - 1) // 2 for n in c.values())  # noqa: E731
    expected = cc.scores(pairs_of(count(want.values())), pairs_of(count(pred.values())),
                         pairs_of(count((pred[k], want[k]) for k in want)))
    assert run.data.metrics["f1"] == pytest.approx(expected["f1"], abs=1e-12)
    assert expected["f1"] > 0.9


def test_reused_ids_stop_the_run_with_one_message(records_dir, tmp_path):
    table = pq.read_table(os.path.join(records_dir, "part-00000.parquet"))
    ids = table["record_id"].to_numpy().copy()
    ids[500:510] = ids[0:10]
    folder = tmp_path / "reused"
    folder.mkdir()
    pq.write_table(table.set_column(0, "record_id", pa.array(ids)),
                   str(folder / "part-00000.parquet"))
    p = _cli(["--data", str(folder)], tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert f"Input '{folder}': column 'record_id' (unique_id in the settings) repeats 10 " \
           f"ids" in out, out
    assert repr(int(ids[0])) in out and "duplicate_ids: keep_first" in out, out
    assert "Traceback" not in out and "Starting an embedded Ray" not in out, out


@pytest.mark.parametrize("name", ["febrl1", "febrl4"])
def test_flow_on_febrl(run_flow, datastore, febrl_dir, tmp_path, monkeypatch, name):
    """The public FEBRL sets through the flow with settings_files/febrl.yaml (FEBRL1
    deduplicated, FEBRL4's two files linked): the partitioned clusters are the single-task
    union-find's bit for bit, each pair comes once in canonical order, the candidate pairs
    and those the cut blocks left out are the in-process job's, and the F1 is high."""
    from examples.identity_resolution import febrl
    from examples.identity_resolution import model as er
    from examples.identity_resolution.settings import read_table
    from tests.unit.test_identity_febrl import F1_FLOOR, FEBRL_YAML, febrl_settings

    namespace(None)
    files = febrl.files(name, febrl_dir)
    tables = [read_table(f) for f in files]
    truth = febrl.truth(tables)
    pq.write_table(truth, str(tmp_path / "truth.parquet"))
    settings = tmp_path / "febrl.yaml"
    settings.write_text(open(FEBRL_YAML).read().replace(
        "link_type: dedupe", f"link_type: {'link' if len(files) > 1 else 'dedupe'}"))
    monkeypatch.setenv("METAFLOW_FLOW_CONFIG", json.dumps({"settings": str(settings)}))
    out = str(tmp_path / "out")
    s = run_flow(FLOW, {"data": ",".join(files), "truth": str(tmp_path / "truth.parquet"),
                        "partitions": 3, "cluster_tasks": 3, "output": out})
    assert s.successful, s.failures
    run = Run(s.pathspec, datastore=datastore)
    got = pq.read_table(f"{out}/clusters.parquet")
    assert got.num_rows == sum(t.num_rows for t in tables)
    assert _canonical(got).equals(_canonical(_single_task_clusters(run)))
    pairs = pq.read_table(f"{out}/pairs.parquet").to_pylist()
    keys = [((p["source_l"], p["id_l"]), (p["source_r"], p["id_r"])) for p in pairs]
    assert len(set(keys)) == len(keys) and not {(b, a) for a, b in keys} & set(keys)
    if len(files) > 1:
        assert all(p["source_l"] < p["source_r"] for p in pairs)
    metrics = run.data.metrics
    alone = er.resolve_in_process(tables, febrl_settings(len(files) > 1), truth,
                                  partitions=5, shard_rows=3000)
    assert metrics["candidate_pairs"] == alone["candidates"]
    assert metrics["pairs_not_compared_cut"] == int(alone["rule_cut"].sum())
    assert [r["not_compared_cut"] for r in metrics["blocking"]] == alone["rule_cut"].tolist()
    assert metrics["f1"] >= F1_FLOOR, metrics
