"""Splink 5 on DuckDB, set up as its documentation advises: the comparison the benchmark
measures rayflow's identity job against. Run by `identity_resolution.py` with the Python of
Splink's own environment (Splink is not a dependency of rayflow):

    python splink_job.py SPEC.json

SPEC names the files, the schema ("febrl" or "people"), the link type, the truth file and
where to write the result (clusters' pairwise F1 and the seconds inside this process).
"""

import json
import sys
import time

STARTED = time.perf_counter()

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import splink.comparison_library as cl  # noqa: E402
from splink import DuckDBAPI, Linker, SettingsCreator, block_on  # noqa: E402

DATE_FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%d %b %Y", "%Y%m%d", "%B %d, %Y", "%b %d %Y",
                "%d.%m.%Y"]


def load(spec: dict, con):
    """The inputs as DuckDB relations: CSV headers and values trimmed, as a user would."""
    frames = []
    for path in spec["files"]:
        if path.endswith(".csv"):
            rel = con.read_csv(path, all_varchar=True)
            cols = ", ".join(f'trim("{c}") AS "{c.strip()}"' for c in rel.columns)
            table = con.sql(f"SELECT {cols} FROM rel").arrow()
        else:
            table = con.read_parquet(path).arrow()
        if hasattr(table, "read_all"):
            table = table.read_all()
        frames.append(table)
    if spec["schema"] == "people":  # Splink's docs: clean and standardize before linking
        out = []
        for t in frames:
            con.register("raw", t)
            fmts = ", ".join(f"'{f}'" for f in DATE_FORMATS)
            t = con.sql(f"""
                SELECT CAST(record_id AS VARCHAR) AS record_id,
                       nullif(regexp_replace(lower(first_name), '[^a-z]', '', 'g'), '')
                           AS first_name,
                       nullif(regexp_replace(lower(last_name), '[^a-z]', '', 'g'), '')
                           AS last_name,
                       nullif(lower(trim(email)), '') AS email,
                       nullif(right(regexp_replace(phone, '[^0-9]', '', 'g'), 10), '') AS phone,
                       nullif(lower(trim(address)), '') AS address,
                       nullif(left(regexp_replace(zip, '[^0-9]', '', 'g'), 5), '') AS zip,
                       CAST(try_strptime(lower(trim(dob)), [{fmts}]) AS DATE) AS dob
                FROM raw""").arrow()
            out.append(t.read_all() if hasattr(t, "read_all") else t)
            con.unregister("raw")
        frames = out
    return frames


def settings_for(spec: dict) -> SettingsCreator:
    link = {"dedupe": "dedupe_only", "link": "link_only"}[spec["link_type"]]
    if spec["schema"] == "febrl":
        return SettingsCreator(
            link_type=link, unique_id_column_name="rec_id",
            comparisons=[
                cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
                cl.NameComparison("surname").configure(term_frequency_adjustments=True),
                cl.DateOfBirthComparison("date_of_birth", input_is_string=True,
                                         datetime_format="%Y%m%d"),
                cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
                cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
                cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
                cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
                cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
                cl.ExactMatch("state"),
            ],
            blocking_rules_to_generate_predictions=[
                block_on("surname"), block_on("given_name", "substr(date_of_birth, 1, 4)"),
                block_on("postcode", "street_number"), block_on("soc_sec_id")],
            retain_intermediate_calculation_columns=False)
    return SettingsCreator(
        link_type=link, unique_id_column_name="record_id",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.75]),
            cl.ExactMatch("zip"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("substr(last_name, 1, 3)", "substr(first_name, 1, 1)", "year(dob)"),
            block_on("email"), block_on("right(phone, 7)")],
        retain_intermediate_calculation_columns=False)


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    con = duckdb.connect()
    frames = load(spec, con)
    settings = settings_for(spec)
    uid = "rec_id" if spec["schema"] == "febrl" else "record_id"
    if spec["link_type"] == "dedupe":  # shards of one dataset
        frames = [pa.concat_tables(frames)]
    db_api = DuckDBAPI(connection=con)
    registered = [db_api.register(f.to_pandas()) for f in frames]
    linker = Linker(registered if len(registered) > 1 else registered[0], settings)
    if spec["schema"] == "febrl":
        deterministic = [block_on("soc_sec_id", "date_of_birth"),
                         block_on("given_name", "surname", "date_of_birth")]
        training = [block_on("given_name", "surname"), block_on("date_of_birth")]
    else:
        deterministic = [block_on("first_name", "last_name", "dob"), block_on("email")]
        training = [block_on("last_name", "dob"), block_on("email")]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pred = linker.inference.predict(threshold_match_probability=0.01)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=spec["threshold"]).as_pandas_dataframe()
    seconds = time.perf_counter() - STARTED
    truth = pa.parquet.read_table(spec["truth"]) if spec["truth"].endswith(".parquet") else None
    ids = pa.array(clusters[uid].astype(str).to_numpy())
    tid = pc.cast(truth.column(0), pa.string())
    pos = pc.index_in(ids, value_set=tid).to_numpy(zero_copy_only=False)
    ent = np.asarray(pc.cast(truth.column(1), pa.string()).to_pylist(), dtype=object)[pos]
    pred_c = clusters["cluster_id"].astype(str).to_numpy()
    json.dump({"seconds_in_process": seconds, **pairwise_f1(pred_c, ent),
               "records": int(len(clusters))}, open(spec["out"], "w"))


def pairwise_f1(pred, true) -> dict:
    def pairs(labels):
        _, counts = np.unique(labels, return_counts=True)
        return int((counts * (counts - 1) // 2).sum())

    both = pairs(np.char.add(np.char.add(pred.astype(str), "|"), true.astype(str)))
    p, t = pairs(pred), pairs(true)
    precision, recall = both / max(p, 1), both / max(t, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


if __name__ == "__main__":
    import pyarrow.parquet  # noqa: F401 - pa.parquet above

    main()
