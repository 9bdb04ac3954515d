"""The one contract every datastore storage backend passes (local disk, S3, any later one).

A backend adopts it in a few lines:

    class TestMyStorageContract(StorageContract):
        @pytest.fixture
        def storage(self):
            return MyStorage(...)   # an empty datastore root

The tests only use the `DataStoreStorage` interface, so a backend that passes behaves, for the
layers above, exactly like every other one. This module must never reach into a backend's
internals or mock its library.
"""

from __future__ import annotations

import os
import pickle

import pytest

from rayflow.datastore.storage import DataStoreStorage
from rayflow.exceptions import DataStoreError

BIG_BLOB_BYTES = 20 * 1024 * 1024


class StorageContract:
    """Test methods over a `storage` fixture that the adopting class provides."""

    def test_round_trip_small(self, storage: DataStoreStorage):
        storage.put("a.bin", b"hello")
        assert storage.get("a.bin") == b"hello"

    def test_round_trip_empty(self, storage: DataStoreStorage):
        storage.put("empty", b"")
        assert storage.get("empty") == b""
        assert storage.exists("empty")

    def test_round_trip_20mb_memoryview(self, storage: DataStoreStorage):
        blob = os.urandom(BIG_BLOB_BYTES)
        storage.put("big/blob", memoryview(blob))
        assert storage.get("big/blob") == blob

    def test_accepts_bytearray_and_typed_memoryview(self, storage: DataStoreStorage):
        storage.put("ba", bytearray(b"xyz"))
        words = memoryview(bytearray(range(16))).cast("I")  # not a byte-format view
        storage.put("words", words)
        assert storage.get("ba") == b"xyz"
        assert storage.get("words") == bytes(range(16))

    def test_overwrite_replaces(self, storage: DataStoreStorage):
        storage.put("k", b"first version, longer")
        storage.put("k", b"second")
        assert storage.get("k") == b"second"

    def test_missing_key_raises_file_not_found_naming_it(self, storage: DataStoreStorage):
        with pytest.raises(FileNotFoundError, match="no/such/key"):
            storage.get("no/such/key")

    def test_nested_paths(self, storage: DataStoreStorage):
        storage.put("F/1/start/7/0.json", b"{}")
        assert storage.get("F/1/start/7/0.json") == b"{}"
        assert storage.exists("F/1/start/7/0.json")

    def test_list_gives_immediate_children(self, storage: DataStoreStorage):
        storage.put_many([("root/x", b"1"), ("root/y/z", b"2"), ("root/y/w/deep", b"3"),
                          ("rootsibling", b"4")])
        assert storage.list("root") == ["x", "y"]
        assert storage.list("root/y") == ["w", "z"]
        assert storage.list("root/") == ["x", "y"]
        assert "root" in storage.list("") and "rootsibling" in storage.list("")

    def test_walk_gives_every_object_below_in_one_pass(self, storage: DataStoreStorage):
        for path in ("w/a/1.json", "w/a/DONE", "w/b/c/deep", "w/top", "other/x"):
            storage.put(path, b"x")
        assert storage.walk("w") == ["a/1.json", "a/DONE", "b/c/deep", "top"]
        assert storage.walk("absent") == []

    def test_list_absent_prefix_is_empty(self, storage: DataStoreStorage):
        assert storage.list("never/written") == []

    def test_exists_is_for_objects_not_prefixes(self, storage: DataStoreStorage):
        storage.put("dir/obj", b"1")
        assert storage.exists("dir/obj")
        assert not storage.exists("dir")
        assert not storage.exists("dir/other")

    def test_exists_many_keeps_input_order(self, storage: DataStoreStorage):
        storage.put_many([("e/1", b"1"), ("e/3", b"3")])
        assert storage.exists_many(["e/1", "e/2", "e/3", "e/4"]) == [True, False, True, False]
        assert storage.exists_many([]) == []

    def test_put_many_200_small_objects(self, storage: DataStoreStorage):
        items = [(f"many/{i:03d}", f"value {i}".encode()) for i in range(200)]
        storage.put_many(items)
        assert storage.list("many") == [f"{i:03d}" for i in range(200)]
        assert storage.get_many([p for p, _ in items]) == [d for _, d in items]
        assert all(storage.exists_many([p for p, _ in items]))

    def test_get_many_missing_raises(self, storage: DataStoreStorage):
        storage.put("g/1", b"1")
        with pytest.raises(FileNotFoundError, match="g/2"):
            storage.get_many(["g/1", "g/2"])

    def test_delete_then_absent_and_repeatable(self, storage: DataStoreStorage):
        storage.put("d/x", b"1")
        storage.delete("d/x")
        assert not storage.exists("d/x")
        storage.delete("d/x")  # deleting what is gone is a no-op

    def test_put_file(self, storage: DataStoreStorage, tmp_path):
        local = tmp_path / "upload.bin"
        local.write_bytes(b"from a file" * 1000)
        storage.put_file("files/upload.bin", str(local))
        assert storage.get("files/upload.bin") == b"from a file" * 1000

    def test_paths_cannot_escape_the_root(self, storage: DataStoreStorage):
        for bad in ("../outside", "a/../../b", "/absolute"):
            with pytest.raises(DataStoreError):
                storage.put(bad, b"1")

    def test_url_and_locality(self, storage: DataStoreStorage):
        assert isinstance(storage.url, str) and storage.url
        assert isinstance(storage.is_local, bool)

    def test_pickles_to_the_same_datastore(self, storage: DataStoreStorage):
        storage.put("p", b"shared")
        clone = pickle.loads(pickle.dumps(storage))
        assert type(clone) is type(storage) and clone.url == storage.url
        assert clone.get("p") == b"shared"
