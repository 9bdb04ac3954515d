"""Columnar task bundles (datastore/bundles.py): what a batch writes reads back record for
record, bundles of the earlier format still read, and a damaged one is an error. No Ray."""

import json

import pytest

from rayflow.datastore import ArtifactInfo, FlowDataStore, TaskRecord
from rayflow.datastore.bundles import records_of, to_columns
from rayflow.datastore.records import dumps_record, loads_record
from rayflow.exceptions import DataStoreError

SHARED = {"items": ArtifactInfo("b" * 32, 500, "builtins.list", "pickle"),
          "n": ArtifactInfo("a" * 32, 5, "builtins.int", "pickle", "gASVBQAAAAAAAABLAi4=")}


def record(i: int, **over) -> TaskRecord:
    fields = dict(
        flow="F", run_id="17", step="work", task_id=str(100 + i), attempt=0,
        status="success",
        artifacts={**SHARED, "out": ArtifactInfo(f"{i:032x}", 5, "builtins.int", "pickle",
                                                 f"I{i}")},
        foreach_stack=[("start", i, 50)], transition={"steps": ["join"], "foreach": None},
        parents=["F/17/start/1"], inputs={f"items[{i}]": "b" * 32}, code_hash="c" * 32,
        params={"n": 50, "name": "x"}, user="me", node="n1@host", started_at=1000.0 + i,
        finished_at=1000.5 + i, python_version="3.11.7", worker=4321, peak_rss=2 ** 27)
    fields.update(over)
    return TaskRecord(**fields)


def as_stored(rec: TaskRecord) -> dict:
    """What a record reads back as through its own JSON (tuples become lists and back)."""
    return TaskRecord.from_json(json.loads(json.dumps(rec.to_json()))).to_json()


def test_a_batch_reads_back_record_for_record():
    recs = [record(i) for i in range(40)]
    recs[3] = record(3, status="failed", attempt=1, exception={"type": "ValueError",
                                                               "message": "no", "kind": "user"})
    recs[7].artifacts.pop("out")                     # a split that set nothing
    recs[9].artifacts["extra"] = SHARED["n"]          # one that set one more
    recs[11] = record(11, foreach_stack=[("start", 11, 50), ("inner", 2, 3)], iteration=2)
    doc = json.loads(dumps_record(to_columns(recs), "a bundle"))
    back = records_of(doc, "a bundle")
    assert [r.to_json() for r in back] == [as_stored(r) for r in recs]
    assert back[11].foreach_stack == [("start", 11, 50), ("inner", 2, 3)]
    # What every record shares is written once.
    assert {"flow", "run_id", "params", "code_hash", "parents"} <= set(doc["common"])
    assert set(doc["artifacts"]["common"]) == {"items", "n"}
    assert {"task_id", "started_at"} <= set(doc["columns"])


def test_listing_reads_only_id_attempt_status_and_caught_until_more_is_asked(monkeypatch):
    """A reader listing a big step builds no whole record (issue 32: listing 100,000 tasks
    within 2x of a plain parse of the same files); one asked for more reads as a TaskRecord."""
    import copy
    import pickle

    recs = [record(i) for i in range(30)]
    recs[5] = record(5, caught=True)
    recs[6] = record(6, status="failed", attempt=2)
    back = records_of(json.loads(dumps_record(to_columns(recs), "b")), "b")
    made = []
    real = TaskRecord.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(TaskRecord, "__init__", counting)
    listed = [(r.task_id, r.attempt, r.status, r.caught) for r in back]
    assert listed == [(r.task_id, r.attempt, r.status, r.caught) for r in recs]
    assert not made
    assert back[7].started_at == 1007.0 and back[7].foreach_stack == [("start", 7, 50)]
    assert back[7].artifacts["out"] == recs[7].artifacts["out"]
    assert len(made) == 1
    assert back[7] == recs[7] and recs[7] == back[7] and back[8] != recs[7]
    for twin in (pickle.loads(pickle.dumps(back[9])), copy.copy(back[9])):
        assert type(twin) is TaskRecord and twin.to_json() == as_stored(recs[9])
        assert twin is not back[9].whole()


def test_shared_fields_make_a_bundle_a_fraction_of_the_records_it_holds():
    recs = [record(i) for i in range(2000)]
    columns = dumps_record(to_columns(recs), "x")
    rows = dumps_record({"records": [r.to_json() for r in recs]}, "x")
    assert len(columns) < len(rows) / 3, (len(columns), len(rows))


def test_bundles_of_the_earlier_format_still_read(tmp_path):
    ds = FlowDataStore.from_url(str(tmp_path), "F")
    recs = [record(i) for i in range(5)]
    folder = tmp_path / "F" / "17" / "work" / "_bundles"
    folder.mkdir(parents=True)
    (folder / "100~104~5~0.json").write_bytes(
        dumps_record({"records": [r.to_json() for r in recs]}, "x"))
    ds.write_tasks([record(i) for i in range(5, 10)], bundle=True)  # and one of this format
    got = ds.bundles.best_all("17", "work")
    assert sorted(got, key=int) == [str(100 + i) for i in range(10)]
    assert got["102"].to_json() == as_stored(recs[2])
    assert ds.read_task("17", "work", "107").artifacts["out"].sha == f"{7:032x}"


def test_a_damaged_bundle_is_an_error_that_names_it():
    doc = to_columns([record(i) for i in range(4)])
    doc["columns"]["task_id"] = doc["columns"]["task_id"][:3]
    with pytest.raises(DataStoreError, match="bundle 9~12 .*not a whole bundle"):
        records_of(loads_record(dumps_record(doc, "x"), "x"), "bundle 9~12")
