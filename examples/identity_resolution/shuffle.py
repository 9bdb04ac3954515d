"""The shuffle between prepare and compare: one Arrow IPC file per prepare task, one run of
record batches per partition.

A prepare task cuts its shard into one piece per partition. Kept as one artifact per piece,
the shuffle was shards x partitions artifacts (33,400 at ten million records), each written,
hashed and recorded on its own, and every piece stayed in the object store as part of its
task's payload (so the store filled and spilled, and a join that read any small artifact of a
prepare task fetched all its pieces). Here a prepare task writes one file and keeps only its
address and where each partition's batches are in it (a small artifact); a compare task
reads just its partition's batches of each file (the IPC file's footer locates them; a local
file is memory-mapped, so the rest of it is never read).

The files live under the run's output folder (`.shuffle/<run id>/`, local or s3://, where the
tasks of a cluster can all reach them, like clusters.parquet) and the end step removes them.
"""

from __future__ import annotations

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem


def shuffle_folder(output: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/.shuffle/{run_id}"


def write_pieces(pieces: list[pa.Table], url: str) -> dict:
    """Write one table per partition into one Arrow IPC file at `url`, uncompressed (the
    file lives for one run). Returns {"url", "batches": [first, count] of each partition}."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    batches, n = [], 0
    schema = pieces[0].schema
    with fs.open(path, "wb") as fh, pa.ipc.new_file(fh, schema) as writer:
        for piece in pieces:
            own = piece.cast(schema).to_batches() if piece.schema != schema \
                else piece.to_batches()
            own = [b for b in own if b.num_rows]
            for batch in own:
                writer.write_batch(batch)
            batches.append([n, len(own)])
            n += len(own)
    return {"url": url, "batches": batches}


def read_partition(shuffles: list[dict], p: int) -> pa.Table:
    """Partition `p`'s rows of every prepare task's file, in the order of `shuffles`."""
    got, schema = [], None
    for written in shuffles:
        first, count = written["batches"][p]
        if not count and schema is not None:
            continue
        fs, path = fsspec.core.url_to_fs(written["url"])
        source = _open(fs, path, written["url"])
        with source:
            reader = pa.ipc.open_file(source)
            schema = reader.schema
            # Mapped batches keep their region of the map alive after the file closes.
            got += [reader.get_batch(i) for i in range(first, first + count)]
    if not got:
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.Table.from_batches(got, schema)


def _open(fs, path: str, url: str):
    try:
        if isinstance(fs, LocalFileSystem):
            return pa.memory_map(path, "r")
        return fs.open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The shuffle file {url}, written by a prepare task, is gone: a run's end step "
            "removes the shuffle files it read. Resume from 'prepare' (rayflow resume "
            "prepare ...) to write them again.") from None


def remove(shuffles: list[dict]) -> None:
    """Remove the shuffle files this run read (its own, or those of the run it resumed and
    cloned prepare from), then their folders once empty: nothing reads them after compare."""
    folders = {}
    for written in shuffles:
        fs, path = fsspec.core.url_to_fs(written["url"])
        if fs.exists(path):
            fs.rm(path)
        folders[path.rsplit("/", 1)[0]] = fs
    for folder, fs in folders.items():
        parent = folder.rsplit("/", 1)[0]  # .shuffle: the last run's goes too
        for path in (folder, parent):
            if isinstance(fs, LocalFileSystem) and fs.isdir(path) and not fs.ls(path):
                fs.rmdir(path)
