"""Turning artifact values into bytes and back.

This module owns the encodings and their wire formats:
- "arrow-ipc" / "arrow-ipc-batch": a `pyarrow.Table` / `RecordBatch` as a compressed Arrow IPC
  stream (the batch variant remembers the type so it comes back as a RecordBatch).
- "pandas-arrow": a pandas DataFrame through Arrow IPC (pandas is never imported here: a value
  can only be a DataFrame if its owner already imported pandas).
- "numpy": a plain ndarray as a small JSON header plus its raw buffer, no pickle.
- "pickle": everything else, pickle protocol 5.

It must never hash, store or name anything (that is the content-addressed store's job), never
copy a large value more than once on the way out (each encoder fills one buffer that is then
hashed and written as a memoryview), and never import ray.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from rayflow.exceptions import DataStoreError

BytesLike = bytes | bytearray | memoryview

ARROW = "arrow-ipc"
ARROW_BATCH = "arrow-ipc-batch"
PANDAS = "pandas-arrow"
NUMPY = "numpy"
PICKLE = "pickle"
ENCODINGS = (ARROW, ARROW_BATCH, PANDAS, NUMPY, PICKLE)

_NUMPY_MAGIC = b"RFNP"
_NUMPY_HEADER_LEN = struct.Struct("<I")
# Arrow columns of these kinds come back from Arrow as the same Python values; others (lists,
# structs, maps) would come back as numpy arrays or dicts, so such frames are pickled instead.
_FAITHFUL_OBJECT_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary,
                          pa.types.is_large_binary, pa.types.is_null, pa.types.is_decimal,
                          pa.types.is_date, pa.types.is_time)


@dataclass(frozen=True)
class SerializedArtifact:
    """An encoded value: `data` is the one buffer to hash and store (often a memoryview)."""

    encoding: str
    type: str      # the value's class, "module.QualName", e.g. "pyarrow.lib.Table"
    data: BytesLike

    @property
    def size(self) -> int:
        return memoryview(self.data).nbytes


def type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _arrow_compression() -> str | None:
    for codec in ("lz4", "zstd"):
        if pa.Codec.is_available(codec):
            return codec
    return None


_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=_arrow_compression())
_IPC_PLAIN = pa.ipc.IpcWriteOptions(compression=None)


def serialize(obj: Any, compress: bool = True) -> SerializedArtifact:
    """Encode one value with the best encoding for its type. `compress=False` writes Arrow
    uncompressed: on a local disk lz4 costs more time (~450 MB/s) than the bytes it saves, on
    S3 the network is slower than lz4."""
    options = _IPC_OPTIONS if compress else _IPC_PLAIN
    if isinstance(obj, pa.Table):
        return SerializedArtifact(ARROW, type_name(obj), _arrow_stream(obj, options))
    if isinstance(obj, pa.RecordBatch):
        return SerializedArtifact(ARROW_BATCH, type_name(obj), _arrow_stream(obj, options))
    if type(obj) is np.ndarray and _numpy_encodable(obj.dtype):
        return SerializedArtifact(NUMPY, type_name(obj), _numpy_bytes(obj))
    if _is_dataframe(obj):
        table = _dataframe_to_table(obj)
        if table is not None:
            return SerializedArtifact(PANDAS, type_name(obj), _arrow_stream(table, options))
    return SerializedArtifact(PICKLE, type_name(obj), pickle.dumps(obj, protocol=5))


def deserialize(encoding: str, data: BytesLike) -> Any:
    """Decode bytes written by `serialize` with `encoding`."""
    if encoding == PICKLE:
        return pickle.loads(data)
    if encoding in (ARROW, ARROW_BATCH, PANDAS):
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        if encoding == ARROW:
            return table
        if encoding == ARROW_BATCH:
            return _single_batch(table)
        return table.to_pandas()
    if encoding == NUMPY:
        return _numpy_from_bytes(data)
    raise DataStoreError(
        f"Unknown artifact encoding {encoding!r} (known: {', '.join(ENCODINGS)}). The artifact "
        "was probably written by a newer rayflow; upgrade rayflow to read it.")


# -- Arrow -----------------------------------------------------------------------------------
def _arrow_stream(data: pa.Table | pa.RecordBatch,
                  options: pa.ipc.IpcWriteOptions = _IPC_OPTIONS) -> memoryview:
    """Write one IPC stream into a single Arrow buffer and expose it without a copy."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema, options=options) as writer:
        if isinstance(data, pa.RecordBatch):
            writer.write_batch(data)
        else:
            writer.write_table(data)
    # The memoryview keeps the pa.Buffer alive for as long as the bytes are needed.
    return memoryview(sink.getvalue())


def _single_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.to_batches()
    if len(batches) == 1:
        return batches[0]
    return table.combine_chunks().to_batches()[0] if table.num_rows else \
        pa.RecordBatch.from_pylist([], schema=table.schema)


# -- pandas ----------------------------------------------------------------------------------
def _is_dataframe(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def _dataframe_to_table(df: Any) -> pa.Table | None:
    """The frame as Arrow, or None when Arrow would not give the same frame back."""
    if not all(isinstance(c, str) for c in df.columns) or not df.columns.is_unique:
        return None  # Arrow renames non-string columns and refuses duplicate ones
    try:
        table = pa.Table.from_pandas(df)
    except (pa.ArrowException, ValueError, TypeError):
        return None  # mixed-type object columns and the like: pickle keeps them exactly
    for name, dtype in df.dtypes.items():
        if dtype == np.dtype(object) and not any(ok(table.schema.field(name).type)
                                       for ok in _FAITHFUL_OBJECT_TYPES):
            return None
    return table


# -- numpy -----------------------------------------------------------------------------------
def _numpy_encodable(dtype: np.dtype) -> bool:
    """Plain scalar dtypes only: objects need pickle, and structured dtypes don't fit a str."""
    return not dtype.hasobject and dtype.names is None and dtype.kind != "V"


def _numpy_bytes(arr: np.ndarray) -> memoryview:
    """Header and raw buffer in one bytearray, filled by a single copy of the array."""
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    header = json.dumps({"dtype": arr.dtype.str, "shape": list(arr.shape),
                         "order": order}).encode()
    start = len(_NUMPY_MAGIC) + _NUMPY_HEADER_LEN.size + len(header)
    out = bytearray(start + arr.nbytes)
    out[:start] = _NUMPY_MAGIC + _NUMPY_HEADER_LEN.pack(len(header)) + header
    if arr.nbytes:
        target = np.ndarray(arr.shape, dtype=arr.dtype, buffer=out, offset=start, order=order)
        np.copyto(target, arr, casting="no")
    return memoryview(out)


def _numpy_from_bytes(data: BytesLike) -> np.ndarray:
    view = memoryview(data)
    if bytes(view[:len(_NUMPY_MAGIC)]) != _NUMPY_MAGIC:
        raise DataStoreError("A 'numpy' artifact does not start with rayflow's numpy header; "
                             "the stored blob is corrupt or was written by another tool.")
    at = len(_NUMPY_MAGIC)
    (header_len,) = _NUMPY_HEADER_LEN.unpack_from(view, at)
    at += _NUMPY_HEADER_LEN.size
    header = json.loads(bytes(view[at:at + header_len]))
    dtype, shape = np.dtype(header["dtype"]), tuple(header["shape"])
    arr = np.frombuffer(view, dtype=dtype, count=math.prod(shape), offset=at + header_len)
    arr = arr.reshape(shape, order=header["order"])
    # Stored bytes are immutable; a user expects an array they can write to, as pickle gives.
    return arr if arr.flags.writeable else arr.copy(order="K")
