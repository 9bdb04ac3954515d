"""The prepare -> compare shuffle: one Arrow IPC file per prepare task, its batches by
partition, read back as exactly the pieces it was given (types, order, empty partitions)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.compute as pc

from examples.identity_resolution import generate
from examples.identity_resolution import model as er
from examples.identity_resolution import shuffle as sh
from examples.identity_resolution.settings import parse_settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEOPLE = os.path.join(ROOT, "examples", "identity_resolution", "settings_files", "people.yaml")


def test_each_partition_reads_back_the_pieces_of_every_shard_exactly(tmp_path):
    table, truth = generate.generate(3000, 3)
    # String ids (as a CSV's), so the id column's type must survive the file too.
    table = table.set_column(0, "record_id", pc.cast(table["record_id"], pa.string()))
    truth = truth.set_column(0, truth.column_names[0], pc.cast(truth.column(0), pa.string()))
    settings = parse_settings(open(PEOPLE).read())
    partitions = 40  # more partitions than some small shards have rows for: empty pieces
    shards = [er.prepare_shard(table.slice(i, n), settings, 0, k, partitions, 50, truth,
                               id_type=pa.string())
              for k, (i, n) in enumerate([(0, 1500), (1500, 1480), (2980, 20)])]
    written = [sh.write_pieces(s.pieces, str(tmp_path / "run" / f"shard-{k}.arrow"))
               for k, s in enumerate(shards)]
    assert os.listdir(tmp_path / "run") and len(os.listdir(tmp_path / "run")) == 3
    assert any(c == 0 for _, c in written[2]["batches"]), "the small shard misses one"
    for p in range(partitions):
        want = pa.concat_tables([s.pieces[p] for s in shards])
        got = sh.read_partition(written, p)  # its files closed: the batches still read
        assert got.schema == want.schema
        assert got.equals(want), p
    # A partition no shard has rows for reads as an empty table of the pieces' schema.
    empty = [{"url": w["url"], "batches": [[0, 0]] * partitions} for w in written]
    assert sh.read_partition(empty, 0).schema == shards[0].pieces[0].schema
    assert sh.read_partition(empty, 0).num_rows == 0


def test_remove_deletes_only_the_files_read_and_their_folders_once_empty(tmp_path):
    out = str(tmp_path / "out")
    piece = pa.table({"a": [1, 2]})
    written = {run: sh.write_pieces([piece], f"{sh.shuffle_folder(out, run)}/shard-00000.arrow")
               for run in ("7", "8")}
    sh.remove([written["7"]])
    sh.remove([written["7"]])  # already gone: no error
    assert sorted(os.listdir(os.path.join(out, ".shuffle"))) == ["8"]
    sh.remove([written["8"]])
    assert not os.path.exists(os.path.join(out, ".shuffle"))


def test_a_removed_shuffle_file_is_one_message_naming_it_and_what_to_do(tmp_path):
    out = str(tmp_path / "out")
    written = sh.write_pieces([pa.table({"a": [1]})], f"{sh.shuffle_folder(out, '5')}/s.arrow")
    sh.remove([written])
    try:
        sh.read_partition([written], 0)
    except FileNotFoundError as exc:
        assert written["url"] in str(exc) and "Resume from 'prepare'" in str(exc)
        assert exc.__cause__ is None and exc.__suppress_context__
    else:
        raise AssertionError("reading a removed shuffle file did not fail")
