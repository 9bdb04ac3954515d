"""The datastore on local disk: the storage contract for LocalStorage, and the layers above it
(content-addressed store, serializers, records, FlowDataStore). No Ray, no S3."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import pickle

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from rayflow.datastore import (
    ArtifactInfo,
    ContentAddressedStore,
    DataStoreStorage,
    FlowDataStore,
    LocalStorage,
    MissingBackendError,
    RunRecord,
    TaskRecord,
    atomic_write,
    default_datastore_url,
    deserialize,
    get_storage,
    register_backend,
    serialize,
)
from rayflow.datastore import storage as storage_module
from rayflow.exceptions import DataStoreError, UnsaveableArtifactError
from tests.datastore_contract import StorageContract


class TestLocalStorageContract(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        return LocalStorage(str(tmp_path / "datastore"))


class RecordingStorage(LocalStorage):
    """Local storage that logs each call, to check how the layers above batch their I/O."""

    def __init__(self, root):
        super().__init__(root)
        self.calls: list[tuple[str, list[str]]] = []

    def put(self, path, data):
        self.calls.append(("put", [path]))
        super().put(path, data)

    def put_many(self, items):
        items = list(items)
        self.calls.append(("put_many", [p for p, _ in items]))
        for path, data in items:
            super().put(path, data)

    def exists_many(self, paths):
        self.calls.append(("exists_many", list(paths)))
        return [super(RecordingStorage, self).exists(p) for p in paths]


@pytest.fixture
def local(tmp_path) -> LocalStorage:
    return LocalStorage(str(tmp_path / "ds"))


@pytest.fixture
def fds(local) -> FlowDataStore:
    return FlowDataStore(local, "MyFlow")


# -- local storage specifics -------------------------------------------------------------------
def test_atomic_write_keeps_old_content_on_error(tmp_path):
    target = tmp_path / "obj"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(str(target)) as f:
        f.write(b"half of the new")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["obj"]


def test_list_hides_temporary_files(local):
    local.put("dir/real", b"1")
    with atomic_write(os.path.join(local.root, "dir", "pending")) as f:
        f.write(b"x")
        assert local.list("dir") == ["real"]  # the temp file exists now, but is hidden
    assert local.list("dir") == ["pending", "real"]


def test_local_layout_is_plain_files(local):
    local.put("a/b/c", b"1")
    assert (pathlib.Path(local.root) / "a" / "b" / "c").read_bytes() == b"1"
    assert local.is_local and local.url == local.root


# -- choosing a backend ------------------------------------------------------------------------
def test_get_storage_local_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("rel/ds", str(tmp_path / "rel" / "ds"), f"file://{tmp_path}/rel/ds"):
        storage = get_storage(url)
        assert isinstance(storage, LocalStorage)
        assert storage.url == str(tmp_path / "rel" / "ds")


def test_get_storage_unknown_protocol_says_what_is_known():
    with pytest.raises(DataStoreError, match=r"gs://.*s3://"):
        get_storage("gs://bucket/prefix")


def test_missing_backend_library_gives_install_hint(monkeypatch):
    monkeypatch.setitem(storage_module._BACKENDS, "fake", storage_module._BACKENDS["file"])
    register_backend("fake", "rayflow_no_such_module:FakeStorage",
                     requires=("rayflow_no_such_module",),
                     install_hint="Install fakefs to use fake:// datastores")
    with pytest.raises(MissingBackendError, match="Install fakefs") as info:
        get_storage("fake://x")
    assert isinstance(info.value, ImportError)


def test_default_datastore_url(tmp_path, monkeypatch):
    monkeypatch.delenv("RAYFLOW_DATASTORE", raising=False)
    project = tmp_path / "project"
    (project / ".rayflow").mkdir(parents=True)
    (project / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(project / "sub" / "deeper")
    assert default_datastore_url() == str(project / ".rayflow")
    monkeypatch.chdir(tmp_path)
    assert default_datastore_url() == str(tmp_path / ".rayflow")  # not found: under the cwd
    monkeypatch.setenv("RAYFLOW_DATASTORE", "relative/store")
    assert default_datastore_url() == str(tmp_path / "relative" / "store")
    monkeypatch.setenv("RAYFLOW_DATASTORE", "s3://bucket/prefix")
    assert default_datastore_url() == "s3://bucket/prefix"


# -- content-addressed store -------------------------------------------------------------------
def test_cas_key_and_layout(local):
    cas = ContentAddressedStore(local, "MyFlow")
    [(sha, size)] = cas.save_blobs([b"payload"])
    assert sha == xxhash.xxh3_128(b"payload").hexdigest() and size == 7
    assert local.exists(f"MyFlow/data/{sha[:2]}/{sha}")
    assert cas.load_blob(sha) == b"payload"


def test_cas_dedupes_across_and_within_calls(local):
    cas = ContentAddressedStore(local, "MyFlow")
    blob = os.urandom(10_000)
    cas.save_blobs([blob, b"small"])
    assert cas.bytes_written == 10_005
    again = cas.save_blobs([bytearray(blob), memoryview(blob), blob])
    assert cas.bytes_written == 10_005  # all three already stored
    assert len({sha for sha, _ in again}) == 1
    cas2 = ContentAddressedStore(local, "MyFlow")
    cas2.save_blobs([b"new", b"new"])
    assert cas2.bytes_written == 3 and cas2.blobs_written == 1


def test_cas_batches_existence_and_writes(tmp_path):
    storage = RecordingStorage(str(tmp_path / "ds"))
    cas = ContentAddressedStore(storage, "F")
    cas.save_blobs([b"a", b"b"])
    cas.save_blobs([b"a", b"b", b"c"])
    kinds = [kind for kind, _ in storage.calls]
    assert kinds == ["exists_many", "put_many", "exists_many", "put_many"]
    assert len(storage.calls[-1][1]) == 1  # only "c" was written the second time


def test_cas_hashes_non_byte_views(local):
    cas = ContentAddressedStore(local, "F")
    arr = np.arange(100, dtype=np.int64)
    [(sha, size)] = cas.save_blobs([memoryview(arr)])
    assert size == 800 and sha == xxhash.xxh3_128(arr.tobytes()).hexdigest()
    assert cas.load_blobs([sha]) == [arr.tobytes()]


def test_cas_missing_blob_names_it(local):
    cas = ContentAddressedStore(local, "F")
    with pytest.raises(FileNotFoundError, match="deadbeef"):
        cas.load_blob("deadbeef" * 4)


# -- serializers -------------------------------------------------------------------------------
def _round_trip(obj):
    s = serialize(obj)
    return s, deserialize(s.encoding, bytes(s.data))


def test_arrow_table_and_batch_round_trip_as_same_type():
    table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
    s, back = _round_trip(table)
    assert (s.encoding, s.type) == ("arrow-ipc", "pyarrow.lib.Table") and back.equals(table)
    assert isinstance(s.data, memoryview)  # the IPC buffer itself, not a bytes copy
    batch = table.to_batches()[0]
    s, back = _round_trip(batch)
    assert s.encoding == "arrow-ipc-batch" and isinstance(back, pa.RecordBatch)
    assert back.equals(batch)
    _, empty = _round_trip(pa.table({"a": pa.array([], pa.int64())}))
    assert empty.num_rows == 0 and empty.schema.names == ["a"]


def test_arrow_is_compressed():
    table = pa.table({"zeros": np.zeros(1_000_000, dtype=np.int64)})
    assert serialize(table).size < table.nbytes / 10


def test_pandas_via_arrow_keeps_index():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}, index=[10, 20, 30])
    s, back = _round_trip(df)
    assert s.encoding == "pandas-arrow"
    pd.testing.assert_frame_equal(back, df)


def test_pandas_that_arrow_would_change_is_pickled():
    pd = pytest.importorskip("pandas")
    for df in (pd.DataFrame({0: [1, 2]}), pd.DataFrame({"lists": [[1, 2], [3]]}),
               pd.DataFrame({"mixed": [1, "x"]})):
        s, back = _round_trip(df)
        assert s.encoding == "pickle"
        pd.testing.assert_frame_equal(back, df)


@pytest.mark.parametrize("arr", [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.asfortranarray(np.arange(12).reshape(3, 4)),
    np.arange(20)[::3],
    np.array(3.5),
    np.zeros((0, 4), dtype=np.int16),
    np.array(["ab", "c"]),
    np.array(["2024-01-01"], dtype="datetime64[ns]"),
    np.arange(6, dtype=">i4"),
], ids=["c", "fortran", "strided", "0d", "empty", "unicode", "datetime", "big-endian"])
def test_numpy_raw_round_trip(arr):
    s, back = _round_trip(arr)
    assert s.encoding == "numpy" and b"pickle" not in bytes(s.data)[:64]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable  # users can write to what they load, as with pickle


def test_numpy_object_and_subclass_arrays_are_pickled():
    for arr in (np.array([{"a": 1}, None], dtype=object), np.ma.masked_array([1, 2], [0, 1])):
        s, back = _round_trip(arr)
        assert s.encoding == "pickle" and type(back) is type(arr)


def test_everything_else_is_pickle_5():
    value = {"nested": [1, 2.5, ("t", None)], "set": {1, 2}}
    s, back = _round_trip(value)
    assert (s.encoding, s.type) == ("pickle", "builtins.dict") and back == value
    assert bytes(s.data)[:2] == b"\x80\x05"


def test_unknown_encoding_says_upgrade():
    with pytest.raises(DataStoreError, match="newer rayflow"):
        deserialize("hdf5", b"")


# -- records -----------------------------------------------------------------------------------
def _task(step="start", task_id="1", attempt=0, status="success", **kw) -> TaskRecord:
    return TaskRecord(flow="MyFlow", run_id="100", step=step, task_id=task_id,
                      attempt=attempt, status=status, **kw)


def test_task_record_json_round_trip():
    rec = _task(artifacts={"x": ArtifactInfo("ab" * 16, 5, "builtins.int", "pickle")},
                foreach_stack=[("split", 2, 5)], params={"alpha": 0.5}, parents=["MyFlow/1/a/1"],
                exception={"type": "ValueError", "message": "m", "traceback": "tb"})
    back = TaskRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert back == rec and back.foreach_stack == [("split", 2, 5)]
    assert back.pathspec == "MyFlow/100/start/1"


def test_records_tolerate_older_and_newer_json():
    run = RunRecord.from_json({"flow": "F", "run_id": "1", "added_later": True})
    assert run.status == "running" and run.tags == []
    task = TaskRecord.from_json({"flow": "F", "run_id": "1", "step": "s", "task_id": "2",
                                 "attempt": "1", "future_field": 1})
    assert task.attempt == 1 and task.artifacts == {}


def test_unencodable_record_names_the_task(fds):
    with pytest.raises(DataStoreError, match="MyFlow/100/start/1"):
        fds.write_task(_task(params={"bad": object()}))


# -- FlowDataStore -----------------------------------------------------------------------------
def test_run_ids_sort_by_time_and_are_unique():
    ids = [FlowDataStore.new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids)
    assert [int(i) // 1000 for i in ids] == sorted(int(i) // 1000 for i in ids)


def test_run_records_and_listing(fds, local):
    for run_id in ("9", "10", "100"):
        fds.write_run(RunRecord(flow="MyFlow", run_id=run_id, tags=["t1"], params={"n": 1}))
    fds.save_artifacts({"x": 1})  # creates MyFlow/data, which is not a run
    local.put("MyFlow/_flow_meta.json", b"{}")
    assert fds.list_run_ids() == ["100", "10", "9"]
    assert fds.read_run("10") == RunRecord(flow="MyFlow", run_id="10", tags=["t1"],
                                           params={"n": 1})
    assert fds.read_run("404") is None


def test_tags_fall_back_to_the_run_record(fds):
    fds.write_run(RunRecord(flow="MyFlow", run_id="1", tags=["a"]))
    assert fds.read_tags("1") == ["a"]
    fds.write_tags("1", ["a", "b", "a"])
    assert fds.read_tags("1") == ["a", "b"]
    assert fds.read_tags("no-run") == []


def test_artifacts_round_trip_and_dedupe(fds):
    table = pa.table({"v": list(range(10_000))})
    infos = fds.save_artifacts({"table": table, "n": 3, "same_table": table})
    assert infos["table"].sha == infos["same_table"].sha
    assert infos["table"].encoding == "arrow-ipc" and infos["n"].type == "builtins.int"
    written = fds.cas.bytes_written
    fds.save_artifacts({"again": table})
    assert fds.cas.bytes_written == written
    assert fds.load_artifact(infos["table"]).equals(table)
    assert fds.load_artifacts(infos)["n"] == 3


def test_unpicklable_artifact_names_it(fds):
    with pytest.raises(UnsaveableArtifactError, match=r"self\.handle \(function\)") as err:
        fds.save_artifacts({"handle": (lambda: 0)})
    assert err.value.artifact == "handle"


def test_task_commit_layout(fds, local):
    fds.write_task(_task(attempt=1))
    files = sorted(os.listdir(os.path.join(local.root, "MyFlow", "100", "start", "1")))
    assert files == ["1.json", "DONE"]
    assert local.get("MyFlow/100/start/1/DONE") == b"1"
    assert fds.is_done("100", "start", "1")


def test_failed_task_has_no_done(fds):
    fds.write_task(_task(status="failed", exception={"type": "E", "message": "", "traceback": ""}))
    assert not fds.is_done("100", "start", "1")
    assert fds.read_task("100", "start", "1").status == "failed"
    assert fds.done_task_ids("100", "start") == set()


def test_read_task_prefers_the_done_attempt(fds):
    fds.write_task(_task(attempt=0))
    fds.write_task(_task(attempt=1, status="failed"))  # a later retry that failed
    assert fds.read_task("100", "start", "1").attempt == 0
    assert fds.read_task("100", "start", "1", attempt=1).status == "failed"
    fds.write_task(_task(task_id="2", attempt=0, status="failed"))
    fds.write_task(_task(task_id="2", attempt=2, status="failed"))
    assert fds.read_task("100", "start", "2").attempt == 2  # no DONE: the highest attempt
    assert fds.read_task("100", "start", "3") is None
    assert fds.read_task("100", "start", "1", attempt=5) is None


def test_write_tasks_writes_every_record_before_any_done(tmp_path):
    storage = RecordingStorage(str(tmp_path / "ds"))
    fds = FlowDataStore(storage, "MyFlow")
    recs = [_task(step="work", task_id=str(i)) for i in range(50)]
    recs.append(_task(step="work", task_id="50", status="failed"))
    fds.write_tasks(recs)
    assert [kind for kind, _ in storage.calls] == ["put_many", "put_many"]
    records, dones = storage.calls[0][1], storage.calls[1][1]
    assert all(p.endswith("/0.json") for p in records) and len(records) == 51
    assert all(p.endswith("/DONE") for p in dones) and len(dones) == 50
    assert fds.done_task_ids("100", "work") == {str(i) for i in range(50)}


def test_steps_and_tasks_listing(fds):
    fds.write_run(RunRecord(flow="MyFlow", run_id="100"))
    fds.write_tags("100", ["x"])
    for step, task_id in (("start", "1"), ("work", "10"), ("work", "9"), ("work", "11")):
        fds.write_task(_task(step=step, task_id=task_id))
    assert fds.list_steps("100") == ["start", "work"]
    assert fds.list_tasks("100", "work") == ["9", "10", "11"]
    assert fds.list_tasks("100", "nope") == []


def test_logs(fds):
    fds.save_log("100", "start", "1", 0, "stdout", "hello\nwörld\n")
    assert fds.load_log("100", "start", "1", 0, "stdout") == "hello\nwörld\n"
    assert fds.load_log("100", "start", "1", 0, "stderr") == ""
    with pytest.raises(DataStoreError, match="stdin"):
        fds.save_log("100", "start", "1", 0, "stdin", "x")


def test_bad_names_are_refused(fds):
    with pytest.raises(DataStoreError, match="Step name"):
        fds.list_tasks("100", "a/b")
    with pytest.raises(DataStoreError, match="Flow name"):
        FlowDataStore(fds.storage, "")


def test_flow_datastore_from_url_and_pickle(tmp_path):
    fds = FlowDataStore.from_url(str(tmp_path / "ds"), "MyFlow")
    fds.write_run(RunRecord(flow="MyFlow", run_id="1"))
    clone = pickle.loads(pickle.dumps(fds))
    assert clone.url == fds.url and clone.read_run("1") is not None


def test_datastore_never_imports_ray():
    folder = pathlib.Path(storage_module.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "ray" or n.startswith("ray.") for n in names), path.name


def test_storage_interface_is_abstract():
    with pytest.raises(TypeError):
        DataStoreStorage("x")  # type: ignore[abstract]
