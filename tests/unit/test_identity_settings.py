"""The identity-resolution model's settings, input checks and learning, without Ray."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from examples.identity_resolution import generate
from examples.identity_resolution import model as er
from examples.identity_resolution.settings import (
    SettingsError,
    check_inputs,
    parse_settings,
    read_table,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "examples", "identity_resolution", "settings_files")

# The generator's records under other column names: what a user's own file looks like.
RENAMED = {"record_id": "person_ref", "first_name": "given", "last_name": "family",
           "dob": "birth", "email": "mail", "phone": "tel", "address": "street",
           "city": "town", "zip": "postal"}
USER_SETTINGS = """
link_type: dedupe
unique_id: person_ref
comparisons:
  - {column: given, comparison: name, nicknames: true}
  - {column: family, comparison: name, term_frequency: true}
  - {column: birth, comparison: date}
  - {column: mail, comparison: email}
  - {column: tel, comparison: phone}
  - {column: street, comparison: jaro_winkler, levels: [0.9, 0.75]}
  - {column: postal, comparison: postcode}
blocking:
  - [soundex(family), prefix(given, 1), year(birth)]
  - [mail]
  - [suffix(tel, 7)]
  - [given, birth]
training:
  - [soundex(family), prefix(given, 1), year(birth)]
  - [mail]
groups:
  - {columns: [tel, street, postal], max_weight: 6}
"""


@pytest.fixture(scope="module")
def people():
    table, truth = generate.generate(6000, seed=3)
    table = table.rename_columns([RENAMED[c] for c in table.column_names])
    return table, truth.rename_columns(["id", "entity"])


def test_shipped_settings_parse():
    for name in os.listdir(SHIPPED):
        with open(os.path.join(SHIPPED, name)) as fh:
            s = parse_settings(fh.read(), where=name)
        assert s.comparisons and s.blocking, name


@pytest.mark.parametrize("change, message", [
    ("comparison: name, nicknames", "comparison 'nam' is not known. Did you mean 'name'?"),
    ("levels: [0.9, 0.75]", "levels must be distinct and in order"),
    ("prefix(given, 1)", "'soundx' is not a blocking function. Did you mean 'soundex'?"),
    ("link_type: dedupe", "link_type 'dedup' is not one of dedupe, link, link_and_dedupe"),
    ("max_weight: 6", "max_weight must be a number above 0"),
    ("unique_id: person_ref", "unknown key 'uniqe_id'. Did you mean 'unique_id'?"),
])
def test_bad_settings_name_the_key_and_the_fix(change, message):
    broken = {"comparison: name, nicknames": "comparison: nam, nicknames",
              "levels: [0.9, 0.75]": "levels: [0.75, 0.9]",
              "prefix(given, 1)": "prefix(given, 1), soundx(family)",
              "link_type: dedupe": "link_type: dedup",
              "max_weight: 6": "max_weight: -1",
              "unique_id: person_ref": "uniqe_id: person_ref"}[change]
    text = USER_SETTINGS.replace(change, broken, 1)
    with pytest.raises(SettingsError) as err:
        parse_settings(text, where="my.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("my.yaml")


def test_settings_rules_that_need_another_part():
    with pytest.raises(SettingsError, match=r"year\(given\) needs 'given' compared as a date"):
        parse_settings(USER_SETTINGS.replace("year(birth)]\n  - [mail]\n  - [suffix",
                                             "year(given)]\n  - [mail]\n  - [suffix"))
    with pytest.raises(SettingsError, match="'town' is not a compared column"):
        parse_settings(USER_SETTINGS.replace("[tel, street, postal]", "[family, town]"))
    with pytest.raises(SettingsError, match="is not one of the blocking rules"):
        parse_settings(USER_SETTINGS.replace("training:\n  - [soundex(family), prefix(given, 1), "
                                             "year(birth)]", "training:\n  - [town]"))
    with pytest.raises(SettingsError, match="not valid YAML or JSON"):
        parse_settings("comparisons: [unclosed")
    linked = parse_settings(USER_SETTINGS.replace("dedupe", "link"))
    with pytest.raises(SettingsError, match="links two or more inputs, but 1 was given"):
        check_inputs(linked, ["x.parquet"])


def test_inputs_that_do_not_match_the_settings(people, tmp_path):
    table, _ = people
    s = parse_settings(USER_SETTINGS, where="my.yaml")
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(table.rename_columns([c if c != "family" else "surname"
                                         for c in table.column_names]), wrong)
    with pytest.raises(SettingsError) as err:
        check_inputs(s, [str(wrong)])
    text = str(err.value)
    assert "has no column 'family' (named by a comparison in my.yaml)" in text
    assert "Its columns:" in text and "surname" in text and "Rename the column" in text
    floats = tmp_path / "floats.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("given"), "given",
                                    pa.array(np.arange(table.num_rows) * 1.5)), floats)
    with pytest.raises(SettingsError, match="column 'given' is double, which comparison 'name' "
                                            "cannot read"):
        check_inputs(s, [str(floats)])
    with pytest.raises(SettingsError, match="does not exist"):
        check_inputs(s, [str(tmp_path / "nowhere.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SettingsError, match="holds no .parquet or .csv files"):
        check_inputs(s, [str(tmp_path / "empty")])
    text_file = tmp_path / "notes.txt"
    text_file.write_text("x")
    with pytest.raises(SettingsError, match="neither Parquet nor CSV"):
        check_inputs(s, [str(text_file)])


def test_em_learns_weights_that_resolve_a_labelled_set(people):
    """EM on a small labelled set, under a schema the job was not written around."""
    table, truth = people
    s = parse_settings(USER_SETTINGS)
    result = er.resolve_in_process([table], s, truth, partitions=4)
    m = result["metrics"]
    assert m["f1"] >= 0.9, m
    model = result["model"]
    # Learned, not set: exact agreement on the birth date is strong evidence, a different
    # date strong evidence against.
    bf = er.bayes_factors(model)[2]
    assert bf[0] > 5 and bf[-1] < -3, bf
    assert 0 < model["lambda"] < 1 and model["em_sessions"]
    # The score's prior is over all pairs, not only the blocked ones.
    n = table.num_rows
    assert model["all_pairs"] == n * (n - 1) // 2 and model["prior"] < model["lambda"] / 100


def test_awkward_inputs_still_resolve(people, tmp_path):
    """String ids, a column of nulls, integer dates and zips, one CSV file."""
    table, truth = people
    n = table.num_rows
    as_int = pc.cast(er.normalize_dates(table["birth"]), pa.int64())  # e.g. 19840312
    postal = pa.array([int(z[:5]) if z and z[:5].isdigit() else None
                       for z in table["postal"].to_pylist()], pa.int64())
    odd = table.set_column(0, "person_ref", pc.binary_join_element_wise(
        "p-", pc.cast(table["person_ref"], pa.string()), ""))
    odd = odd.set_column(odd.schema.get_field_index("birth"), "birth", as_int)
    odd = odd.set_column(odd.schema.get_field_index("postal"), "postal", postal)
    odd = odd.set_column(odd.schema.get_field_index("street"), "street",
                         pa.nulls(n, pa.string()))
    csv = tmp_path / "people.csv"
    pcsv.write_csv(odd, csv)
    s = parse_settings(USER_SETTINGS)
    [[path]] = check_inputs(s, [str(csv)])
    loaded = read_table(path)
    string_truth = pa.table({"id": pc.binary_join_element_wise(
        "p-", pc.cast(truth["id"], pa.string()), ""), "entity": truth["entity"]})
    result = er.resolve_in_process([loaded], s, string_truth, partitions=4)
    assert result["clusters"]["id"].type == pa.string()
    assert result["metrics"]["f1"] >= 0.85, result["metrics"]


def test_link_mode_and_a_saved_model_scoring_new_records(people, tmp_path):
    """Train on one dataset; a later run links new records to it with the saved model."""
    table, truth = people
    cut = int(table.num_rows * 0.7)
    old, new = table.slice(0, cut), table.slice(cut)
    s = parse_settings(USER_SETTINGS)
    trained = er.resolve_in_process([old], s, truth, partitions=4)
    path = str(tmp_path / "model.json")
    er.save_model(trained["model"], path)

    linked = parse_settings(USER_SETTINGS.replace("link_type: dedupe", "link_type: link"))
    loaded = er.load_model(path, linked)
    result = er.resolve_in_process([old, new], linked, truth, partitions=4, model=loaded)
    assert result["model"] is loaded
    pairs = pa.concat_tables(result["scored"])
    src_l = pc.shift_right(pairs["__rid_l"], 32).to_numpy()
    src_r = pc.shift_right(pairs["__rid_r"], 32).to_numpy()
    shard_source = {0: 0, 1: 1}
    assert all(shard_source[a] != shard_source[b] for a, b in zip(src_l, src_r))
    # Of the new records whose person is also in the old data, most join that person.
    clusters = result["clusters"]
    entity = dict(zip(truth["id"].to_pylist(), truth["entity"].to_pylist()))
    old_people = {entity[i] for i in old["person_ref"].to_pylist()}
    by_cluster = {}
    for src, rid, cid in zip(clusters["source"].to_pylist(), clusters["id"].to_pylist(),
                             clusters["cluster_id"].to_pylist()):
        by_cluster.setdefault(cid, []).append((src, entity[rid]))
    hits = total = 0
    for members in by_cluster.values():
        for src, person in members:
            if src == 1 and person in old_people:
                total += 1
                hits += any(s0 == 0 and p0 == person for s0, p0 in members)
    assert total > 500 and hits / total >= 0.9, (hits, total)
    with pytest.raises(er.ModelError, match="was trained on comparisons"):
        er.load_model(path, parse_settings(USER_SETTINGS.replace(
            "{column: postal, comparison: postcode}", "{column: postal, comparison: exact}")))


def test_levels_of_a_name_comparison_with_swaps_and_a_capped_group():
    s = parse_settings("""
comparisons:
  - {column: first, comparison: name, swapped_with: last}
  - {column: last, comparison: name}
  - {column: tel, comparison: phone}
  - {column: zip, comparison: postcode}
blocking: [[last]]
groups:
  - {columns: [tel, zip], max_weight: 3}
""")
    table = pa.table({"first": ["ann", "smith", "anne", "bob", None],
                      "last": ["smith", "ann", "smith", "jones", "smith"],
                      "tel": ["555-123-4567"] * 5, "zip": ["12345"] * 5})
    norm = pa.table(er.normalize(table, s))
    cols = er.Columns(norm)
    left, right = np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4])
    first = s.comparisons[0]
    assert first.level_names == ("exact", "jaro_winkler>=0.92", "jaro_winkler>=0.8",
                                 "same soundex", "swapped with last", "else")
    g = er.compare_column(first, cols, left, right)
    assert g.tolist() == [4, 1, 5, -1]  # swapped, ann/anne (Jaro-Winkler 0.94), else, null
    terms = np.array([[1.0, 2.0, 5.0, 4.0], [0.0, 0.0, -4.0, -4.0]])
    # tel + zip count at most +-3 bits together; the names add as they are
    assert er.combine(terms, s).tolist() == [6.0, -3.0]


def test_max_block_none_cuts_no_block():
    from examples.identity_resolution.settings import NO_CUT

    for value in ("none", "null"):
        assert parse_settings(USER_SETTINGS + f"\nmax_block: {value}\n").max_block == NO_CUT
    assert parse_settings(USER_SETTINGS + "\nmax_block: 50\n").max_block == 50
    with pytest.raises(SettingsError) as err:
        parse_settings(USER_SETTINGS + "\nmax_block: all\n", where="my.yaml")
    assert "max_block must be an integer from 2 to 1e+07 (or none: no block cut), not 'all'" \
        in str(err.value)
