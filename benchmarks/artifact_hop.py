"""What it costs to hand a big Arrow table to the next step, and to checkpoint it.

    .venv/bin/python benchmarks/artifact_hop.py [--quick]

One table, four parts:
1. In-memory hop: a 2-step flow (`start` builds the table, `consume` reads `self.table.num_rows`)
   stamps time.time() into artifacts: hop = from the last line of `start` to `num_rows` read in
   `consume`. That path includes what rayflow does between them: capture (which artifacts
   changed; a big Arrow table is encoded only after it is handed on), Ray's put of the
   payload, scheduling and the zero-copy get. `start`'s checkpoint is written meanwhile, and
   the run ends only once it is durable. The same
   flow with a 0-row table gives the fixed cost of a hop. Raw baseline, same process, same Ray:
   `ray.put(table)`, then a task that `ray.get`s it and reads num_rows (and, for reference, a
   producer task returning the table to a consumer task, which is the flow's shape).
2. Checkpoint to local disk: `FlowDataStore.save_artifacts({"t": table})` into a fresh folder,
   split into serialize / hash / write; then the same call again (dedupe: no bytes written).
   Plain file writes of the same bytes (without and with fsync) give the disk's ceiling.
3. Checkpoint to S3 (a SeaweedFS `weed mini` started here, tests/s3server.py): the same, against
   raw s3fs `pipe` / `cat` of the same serialized bytes on the same server.
4. Repeat writes after dedupe, local and S3.

Table data: an int64 row id (sorted, compresses well) and a float64 uniform random column
(does not). MB/s is always the table's in-memory size (`table.nbytes`) per second, so rows
compare the cost of moving the same table; the bytes actually stored are listed beside.
Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import time

from _common import ROOT, log, markdown_table, met, ray_init, scratch_dir, write_section

sys.path.insert(0, os.path.join(ROOT, "tests"))
from s3server import SeaweedS3Server  # the test suite's own server helper

MB = 1e6
FULL_BYTES = 1_000_000_000   # 62.5M rows x 16 bytes
S3_FULL_BYTES = 256_000_000
TARGET_HOP_RATIO = 1.5   # against raw Ray's task-to-task hand-off (issue 32)
TARGET_LOCAL_MBS = 1000.0
TARGET_S3_RATIO = 1.0

FLOW_SOURCE = '''
import time

from rayflow import FlowSpec, Parameter, step


def make_table(rows):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    return pa.table({"id": np.arange(rows, dtype=np.int64), "x": rng.random(rows)})


class HopFlow(FlowSpec):
    rows = Parameter("rows", type=int, default=0)

    @step
    def start(self):
        self.table = make_table(self.rows)
        self.t_made = time.time()
        self.next(self.consume)

    @step
    def consume(self):
        self.t_begin = time.time()
        self.num_rows = self.table.num_rows
        self.t_read = time.time()
        self.next(self.end)

    @step
    def end(self):
        assert self.num_rows == self.rows
'''


def make_table(rows: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    return pa.table({"id": np.arange(rows, dtype=np.int64), "x": rng.random(rows)})


def mbs(nbytes: float, seconds: float) -> str:
    return f"{nbytes / MB / seconds:,.0f}" if seconds > 0 else "-"


def med(values: list[float]) -> float:
    return statistics.median(values)


def secs(values: list[float], digits: int = 2) -> str:
    """The median, with the range when there were several repetitions."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{med(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def collect(runs: list[dict]) -> dict[str, list]:
    """[{k: v}, ...] -> {k: [v, ...]}"""
    return {k: [r[k] for r in runs] for k in runs[0]}


# -- 1. the in-memory hop ---------------------------------------------------------------------
def flow_hop(loaded, rows: int) -> dict:
    """One run of HopFlow; the hop and its parts, from the artifacts and the task records."""
    from rayflow.datastore import FlowDataStore
    from rayflow.runtime.run_loop import RunLoop, RunOptions

    ds_url = scratch_dir("hop-flow-")
    t0 = time.perf_counter()
    summary = RunLoop(loaded, {"rows": rows}, RunOptions(datastore_url=ds_url,
                                                        progress=False)).run()
    wall = time.perf_counter() - t0
    if not summary.successful:
        raise SystemExit(f"HopFlow rows={rows} failed: {summary.failures[:1]}")
    ds = FlowDataStore.from_url(ds_url, loaded.name)
    start = ds.read_task(summary.run_id, "start", ds.list_tasks(summary.run_id, "start")[0])
    consume = ds.read_task(summary.run_id, "consume",
                           ds.list_tasks(summary.run_id, "consume")[0])

    def value(rec, name):
        return ds.load_artifact(rec.artifacts[name])

    t_made, t_begin, t_read = (value(start, "t_made"), value(consume, "t_begin"),
                               value(consume, "t_read"))
    out = {"wall": wall, "hop": t_read - t_made, "capture": start.finished_at - t_made,
           "between": t_begin - start.finished_at, "load": t_read - t_begin}
    shutil.rmtree(ds_url, ignore_errors=True)
    log(f"flow hop rows={rows:,}: {out['hop']:.3f} s (capture {out['capture']:.3f}, "
        f"checkpoint+put+schedule {out['between']:.3f}, load {out['load']:.3f}); "
        f"run {wall:.2f} s")
    return out


def _read_rows(refs):
    import ray

    t_start = time.time()
    rows = ray.get(refs[0]).num_rows
    return t_start, time.time(), rows


def _produce(rows):
    table = make_table(rows)
    return time.time(), table


def raw_put_get(ray, table) -> float:
    """ray.put in this process, then a task that ray.gets it; seconds until num_rows is read."""
    reader = ray.remote(_read_rows)
    ray.get(reader.remote([ray.put(make_table(1))]))  # a worker is warm and has imported
    t0 = time.time()
    ref = ray.put(table)
    _, t_read, rows = ray.get(reader.remote([ref]))
    assert rows == table.num_rows
    del ref
    log(f"raw ray.put + task ray.get: {t_read - t0:.3f} s")
    return t_read - t0


def _read_arg(table):
    return time.time(), table.num_rows


def raw_task_to_task(ray, rows: int, waiting: bool = False) -> float:
    """A task returns the table, another task gets it: the flow's own shape, without rayflow.
    Timed as the flow's hop is, between the same two lines of user code: from the producer's
    last line (the table built) to num_rows read in the consumer. The consumer takes the
    table's ref as its argument, so Ray starts it once the table is stored, as rayflow starts
    `consume` once `start` handed its payload on. `waiting`: the consumer is given the ref in
    a list instead, so it starts at once and waits in ray.get (for reference)."""
    producer = ray.remote(num_returns=2)(_produce)
    t_ref, table_ref = producer.remote(rows)
    if waiting:
        _, t_read, got = ray.get(ray.remote(_read_rows).remote([table_ref]))
    else:
        t_read, got = ray.get(ray.remote(_read_arg).remote(table_ref))
    t_made = ray.get(t_ref)
    assert got == rows
    del table_ref
    log(f"raw task -> task{' (consumer waiting)' if waiting else ''}: {t_read - t_made:.3f} s")
    return t_read - t_made


# -- 2, 3, 4. checkpoints ---------------------------------------------------------------------
def serialize_like_datastore(table, is_local: bool):
    """rayflow's serialize, with the compression choice save_artifacts makes for this kind of
    storage (uncompressed on local disk, lz4 elsewhere), where rayflow has that choice."""
    import inspect

    from rayflow.datastore import serialize

    if "compress" in inspect.signature(serialize).parameters:
        return serialize(table, compress=not is_local)
    return serialize(table)


def encoding_label(is_local: bool) -> str:
    import inspect

    from rayflow.datastore import serialize

    if "compress" in inspect.signature(serialize).parameters and is_local:
        return "Arrow IPC, uncompressed"
    return "Arrow IPC, lz4"


def checkpoint(ds_url: str, table) -> dict:
    """save_artifacts into a fresh flow store, then again (dedupe), then a load. The parts
    (serialize, hash, the storage write) are timed on their own just before, through the
    same layers save_artifacts uses, so they show where its time goes."""
    from rayflow.datastore import FlowDataStore, blob_hash

    ds = FlowDataStore.from_url(ds_url, "HopBench")
    t0 = time.perf_counter()
    ser = serialize_like_datastore(table, ds.storage.is_local)
    t1 = time.perf_counter()
    blob_hash(ser.data)
    t2 = time.perf_counter()
    ds.storage.put("HopBench/probe/blob", ser.data)
    t3 = time.perf_counter()
    ds.storage.delete("HopBench/probe/blob")
    del ser
    gc.collect()
    t4 = time.perf_counter()
    info = ds.save_artifacts({"t": table})["t"]
    save = time.perf_counter() - t4
    stored = info.size
    t5 = time.perf_counter()
    ds.save_artifacts({"t": table})
    repeat = time.perf_counter() - t5
    t6 = time.perf_counter()
    back = ds.load_artifact(info)
    load = time.perf_counter() - t6
    assert back.num_rows == table.num_rows
    del back
    out = {"serialize": t1 - t0, "hash": t2 - t1, "write": t3 - t2, "save": save,
           "repeat": repeat, "load": load, "stored": stored}
    log(f"checkpoint {ds_url}: save {save:.2f} s (parts alone: serialize "
        f"{out['serialize']:.2f}, hash {out['hash']:.2f}, write {out['write']:.2f}), repeat "
        f"{repeat:.2f} s, load {load:.2f} s, stored {stored / MB:,.0f} MB")
    return out


def arrow_ipc(table, codec: str | None) -> float:
    """For reference: Arrow IPC of the same table by pyarrow alone, with `codec`; seconds."""
    import pyarrow as pa

    t0 = time.perf_counter()
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=codec)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    sink.getvalue()
    return time.perf_counter() - t0


def raw_local_write(folder: str, data) -> tuple[float, float]:
    """A plain file write of `data`, without then with fsync; seconds each."""
    path = os.path.join(folder, "raw.bin")
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        fh.write(data)
    plain = time.perf_counter() - t0
    os.remove(path)
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    synced = time.perf_counter() - t0
    os.remove(path)
    return plain, synced


def raw_s3(server: SeaweedS3Server, data) -> tuple[float, float]:
    """s3fs pipe, then cat, of `data` on the same server; seconds each."""
    import s3fs

    fs = s3fs.S3FileSystem(key=server.access_key, secret=server.secret_key,
                           client_kwargs={"endpoint_url": server.endpoint,
                                          "region_name": server.region},
                           skip_instance_cache=True)
    path = f"{server.bucket}/raw/blob"
    body = data if isinstance(data, bytes) else bytes(data)  # s3fs wants bytes; not timed
    t0 = time.perf_counter()
    fs.pipe(path, body)
    put = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = fs.cat(path)
    get = time.perf_counter() - t0
    assert len(back) == len(body)
    fs.rm(path)
    log(f"raw s3fs: pipe {put:.2f} s, cat {get:.2f} s")
    return put, get


# -- the report -------------------------------------------------------------------------------
def _serialize_in_worker(rows: int) -> tuple[float, float]:
    """serialize + hash of a fresh table inside a Ray worker, where steps run (Ray sets
    OMP_NUM_THREADS=1 there, which also sizes Arrow's thread pool)."""
    from rayflow.datastore import blob_hash

    table = make_table(rows)
    t0 = time.perf_counter()
    ser = serialize_like_datastore(table, True)  # the flow's datastore is on local disk
    t1 = time.perf_counter()
    blob_hash(ser.data)
    return t1 - t0, time.perf_counter() - t1


def measure_hop(ray, table, reps: int) -> tuple[dict, dict, list, list, list]:
    from rayflow.runtime.flowfile import load_flow

    folder = scratch_dir("hop-")
    flow_file = os.path.join(folder, "hop_flow.py")
    with open(flow_file, "w") as fh:
        fh.write(FLOW_SOURCE)
    loaded = load_flow(flow_file)
    rows = table.num_rows
    # Warm-ups, not counted: workers started and rayflow imported, and the object store's
    # shared memory touched once at this size (the first big put pays for its pages).
    log("warm-up runs (not counted)")
    flow_hop(loaded, 0)
    flow_hop(loaded, rows)
    raw_put_get(ray, table)
    raw_task_to_task(ray, rows)
    raw_task_to_task(ray, rows, waiting=True)
    log("measured runs, alternated (the order turning each round): rayflow hop, raw task -> "
        "task, raw task -> waiting task, raw put/get")
    empty = collect([flow_hop(loaded, 0) for _ in range(reps)])
    hops, raw, raw_tt, raw_wait = [], [], [], []
    cases = [lambda: hops.append(flow_hop(loaded, rows)),
             lambda: raw_tt.append(raw_task_to_task(ray, rows)),
             lambda: raw_wait.append(raw_task_to_task(ray, rows, waiting=True)),
             lambda: raw.append(raw_put_get(ray, table))]
    for r in range(reps):
        for case in cases[r % 4:] + cases[:r % 4]:
            case()
    hop = collect(hops)
    hop["raw_wait"] = raw_wait
    in_worker = [ray.get(ray.remote(_serialize_in_worker).remote(rows)) for _ in range(reps)]
    shutil.rmtree(folder, ignore_errors=True)
    return empty, hop, raw, raw_tt, in_worker


def hop_rows(nbytes, empty, hop, raw, raw_tt, in_worker) -> list[list]:
    size = f"{nbytes / MB:,.0f} MB"
    ser_w, hash_w = [w[0] for w in in_worker], [w[1] for w in in_worker]
    return [
        ["hop: rayflow start -> consume, 0-row table (fixed cost)", "0 MB",
         secs(empty["hop"], 3), "-", "-", ""],
        ["hop: rayflow start -> consume (end of start to num_rows read)", size,
         secs(hop["hop"]), mbs(nbytes, med(hop["hop"])), "-",
         f"{med(hop['hop']) / med(raw_tt):.2f}x raw task -> task"],
        ["  part: capture in start (what changed; the table's encoding waits)", size,
         secs(hop["capture"], 3), "", "", ""],
        ["  part: Ray put of the payload + scheduling (checkpoint written beside)", size,
         secs(hop["between"]), "", "", ""],
        ["  part: load in consume (ray.get) + num_rows", size, secs(hop["load"], 3), "", "",
         ""],
        ["hop: raw task returns table -> task started waiting in ray.get (for reference)", size,
         secs(hop["raw_wait"], 3), mbs(nbytes, med(hop["raw_wait"])), "-",
         f"{med(hop['raw_wait']) / med(raw_tt):.2f}x raw task -> task"],
        [f"  for reference: serialize ({encoding_label(True)}) in a Ray worker", size,
         secs(ser_w),
         mbs(nbytes, med(ser_w)), "", ""],
        ["  for reference: hash in a Ray worker", size, secs(hash_w, 3),
         mbs(nbytes, med(hash_w)), "", ""],
        ["hop flow: whole run, 3 tasks, until every checkpoint is durable", size,
         secs(hop["wall"]), "", "", ""],
        ["hop: raw task returns table -> task ray.get (baseline: the flow's shape)", size,
         secs(raw_tt, 3), mbs(nbytes, med(raw_tt)), "-", "1.00x"],
        ["hop: raw driver ray.put + task ray.get (for reference)", size, secs(raw, 3),
         mbs(nbytes, med(raw)), "-", f"{med(raw) / med(raw_tt):.2f}x raw task -> task"],
    ]


def measure_local(table, reps: int) -> tuple[dict, list, list, dict]:
    local = collect([_local_checkpoint(table) for _ in range(reps)])
    raw_ipc = {codec: [arrow_ipc(table, codec) for _ in range(reps)] for codec in (None, "lz4")}
    folder = scratch_dir("hop-raw-")
    data = serialize_like_datastore(table, True).data
    raw = [raw_local_write(folder, data) for _ in range(reps)]
    del data
    shutil.rmtree(folder, ignore_errors=True)
    return local, [r[0] for r in raw], [r[1] for r in raw], raw_ipc


def _local_checkpoint(table) -> dict:
    folder = scratch_dir("hop-local-")
    try:
        return checkpoint(folder, table)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def local_rows(nbytes, local, plain, synced, raw_ipc) -> list[list]:
    size = f"{nbytes / MB:,.0f} MB"
    stored = f"{med(local['stored']) / MB:,.0f} MB"
    ser_hash = med(local["serialize"]) + med(local["hash"])
    return [
        ["local checkpoint: save_artifacts (serialize + hash + write)", size,
         secs(local["save"]), mbs(nbytes, med(local["save"])), stored, ""],
        [f"  part: serialize ({encoding_label(True)}), in this process", size,
         secs(local["serialize"]), mbs(nbytes, med(local["serialize"])), "", ""],
        ["  for reference: pyarrow IPC alone, uncompressed", size, secs(raw_ipc[None]),
         mbs(nbytes, med(raw_ipc[None])), "", ""],
        ["  for reference: pyarrow IPC alone, lz4", size, secs(raw_ipc["lz4"]),
         mbs(nbytes, med(raw_ipc["lz4"])), "", ""],
        ["  part: hash (xxh3-128)", size, secs(local["hash"], 3),
         mbs(nbytes, med(local["hash"])), "", ""],
        ["  part: LocalStorage.put of the serialized bytes", stored, secs(local["write"]),
         mbs(nbytes, med(local["write"])), "", ""],
        ["local checkpoint: repeat write of the same table (dedupe)", size,
         secs(local["repeat"]), mbs(nbytes, med(local["repeat"])), "0 MB",
         f"{med(local['repeat']) / ser_hash:.2f}x serialize+hash"],
        ["local load: load_artifact (read + deserialize)", size, secs(local["load"]),
         mbs(nbytes, med(local["load"])), "", ""],
        ["raw local: file write of the serialized bytes (no fsync)", stored, secs(plain),
         mbs(nbytes, med(plain)), stored, ""],
        ["raw local: file write + fsync", stored, secs(synced), mbs(nbytes, med(synced)),
         stored, ""],
    ]


def measure_s3(table, reps: int) -> tuple[dict, list, list]:
    with SeaweedS3Server() as server:
        log(f"SeaweedFS S3 at {server.endpoint} (started in {server.last_start_s:.1f} s)")
        saved_env = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        try:
            s3 = collect([checkpoint(f"s3://{server.bucket}/bench{i}", table)
                          for i in range(reps)])
            data = serialize_like_datastore(table, False).data
            raw = [raw_s3(server, data) for _ in range(reps)]
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return s3, [r[0] for r in raw], [r[1] for r in raw]


def s3_rows(nbytes, s3, put, get) -> list[list]:
    size = f"{nbytes / MB:,.0f} MB"
    stored = f"{med(s3['stored']) / MB:,.0f} MB"
    ser_hash = med(s3["serialize"]) + med(s3["hash"])
    return [
        ["S3 checkpoint: save_artifacts (serialize + hash + PUT)", size, secs(s3["save"]),
         mbs(nbytes, med(s3["save"])), stored, f"{med(put) / med(s3['save']):.2f}x raw s3fs"],
        [f"  part: serialize ({encoding_label(False)}) + hash", size, f"{ser_hash:.2f}", "",
         "", ""],
        ["  part: S3Storage.put of the serialized bytes", stored, secs(s3["write"]),
         mbs(nbytes, med(s3["write"])), "", ""],
        ["raw s3fs: pipe of the serialized bytes", stored, secs(put), mbs(nbytes, med(put)),
         stored, "1.00x"],
        ["S3 checkpoint: repeat write of the same table (dedupe)", size, secs(s3["repeat"]),
         mbs(nbytes, med(s3["repeat"])), "0 MB",
         f"{med(s3['repeat']) / ser_hash:.2f}x serialize+hash"],
        ["S3 load: load_artifact (GET + deserialize)", size, secs(s3["load"]),
         mbs(nbytes, med(s3["load"])), "", f"{med(get) / med(s3['load']):.2f}x raw s3fs"],
        ["raw s3fs: cat of the serialized bytes", stored, secs(get), mbs(nbytes, med(get)),
         "", "1.00x"],
    ]


HOP_NOTES = (
    "Both sides are timed between the same two lines of user code, on the same running Ray "
    "(2 CPUs, started by the script), alternated with the order turning each round: from the "
    "producer's last line (`time.time()` once the table is built) to `num_rows` read in the "
    "consumer. rayflow: `start -> consume` of a flow, the stamps stored as artifacts. Raw: a "
    "task returns the table (`num_returns=2`: the stamp and the table) and a second task takes "
    "its ref as an argument, so Ray starts it once the table is stored, as rayflow starts "
    "`consume` once `start` handed its payload on; for reference, the consumer given the ref "
    "in a list (it starts at once and waits in `ray.get`). Both hand the table over the same "
    "way: Ray stores the producer's return (one copy of the table into the object store) and "
    "the consumer maps it without a copy. Every Ray worker imports pyarrow and numpy as it "
    "starts (`worker_process_setup_hook`), so neither side pays that import inside its hop. "
    "One uncounted warm-up of each first.\n\n")


def import_arrow() -> None:
    """Every Ray worker's set-up (`worker_process_setup_hook`): import what reading the table
    needs as the worker starts, so that neither side's hop pays for pyarrow's import on a
    worker that had not read a table yet (rayflow's warmed workers had; a raw consumer landing
    on a fresh worker imported it inside its ray.get, 0.1-0.5 s at this load)."""
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401


def hop_ray():
    return ray_init(runtime_env={"worker_process_setup_hook": import_arrow})


def hop_only(nbytes: int, reps: int) -> None:
    size = f"{nbytes / MB:,.0f} MB"
    log(f"building a {nbytes // 16:,}-row table ({size})")
    table = make_table(nbytes // 16)
    ray = hop_ray()
    empty, hop, raw, raw_tt, in_worker = measure_hop(ray, table, reps)
    ray.shutdown()
    rows = hop_rows(nbytes, empty, hop, raw, raw_tt, in_worker)
    ratio = med(hop["hop"]) / med(raw_tt)
    target = (f"- {size} in-memory hop within {TARGET_HOP_RATIO}x of raw Ray's task -> task "
              f"hand-off: {met(ratio <= TARGET_HOP_RATIO)} ({ratio:.2f}x: "
              f"{med(hop['hop']):.3f} s vs {med(raw_tt):.3f} s, medians of {reps}, "
              f"alternated)")
    table_md = markdown_table(["what", "size", "seconds: median (min-max)",
                               "MB/s (table size / s)", "stored", "ratio"], rows)
    print(table_md)
    print(target)
    write_section("artifact_hop_vs_raw", "artifact_hop: the in-memory hop against raw Ray's "
                  "task-to-task hand-off, timed alike (issue 32)",
                  HOP_NOTES + table_md + "\n\nTarget:\n\n" + target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="250 MB table in memory and on disk, 64 MB on S3, 1 repetition")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions of each row (default 3; 1 with --quick)")
    parser.add_argument("--hop-only", action="store_true",
                        help="only the in-memory hop against raw Ray (its own section)")
    args = parser.parse_args()
    if args.hop_only:
        return hop_only(FULL_BYTES // 4 if args.quick else FULL_BYTES, args.reps or 3)
    nbytes = FULL_BYTES // 4 if args.quick else FULL_BYTES
    s3_bytes = S3_FULL_BYTES // 4 if args.quick else S3_FULL_BYTES
    reps = args.reps or (1 if args.quick else 3)
    size, s3_size = f"{nbytes / MB:,.0f} MB", f"{s3_bytes / MB:,.0f} MB"

    log(f"building a {nbytes // 16:,}-row table ({size})")
    table = make_table(nbytes // 16)
    assert table.nbytes == nbytes, table.nbytes
    ray = hop_ray()
    empty, hop, raw, raw_tt, in_worker = measure_hop(ray, table, reps)
    gc.collect()
    local, plain, synced, raw_ipc = measure_local(table, reps)
    del table
    gc.collect()
    s3, put, get = measure_s3(make_table(s3_bytes // 16), reps)
    ray.shutdown()

    rows = (hop_rows(nbytes, empty, hop, raw, raw_tt, in_worker)
            + local_rows(nbytes, local, plain, synced, raw_ipc) + s3_rows(s3_bytes, s3, put, get))
    hop_ratio = med(hop["hop"]) / med(raw_tt)
    local_mbs = nbytes / MB / med(local["save"])
    s3_ratio = med(put) / med(s3["save"])
    targets = [
        (f"- {size} in-memory hop within {TARGET_HOP_RATIO}x of raw Ray's task -> task hand-off "
         f"(a task returns the table, the next task gets its ObjectRef): "
         f"{met(hop_ratio <= TARGET_HOP_RATIO)} ({hop_ratio:.2f}x: {med(hop['hop']):.2f} s vs "
         f"{med(raw_tt):.2f} s, medians of {reps}, alternated)"),
        (f"- local checkpoint >= {TARGET_LOCAL_MBS:.0f} MB/s: "
        f"{met(local_mbs >= TARGET_LOCAL_MBS)} ({local_mbs:,.0f} MB/s for {size})"),
        (f"- S3 checkpoint >= {TARGET_S3_RATIO}x raw s3fs: {met(s3_ratio >= TARGET_S3_RATIO)} "
        f"({s3_ratio:.2f}x for {s3_size}: {med(s3['save']):.2f} s vs pipe {med(put):.2f} s)"),
    ]
    headers = ["what", "size", "seconds: median (min-max)", "MB/s (table size / s)",
               "stored", "ratio"]
    table_md = markdown_table(headers, rows)
    print(table_md)
    print("\n".join(targets))
    notes = (f"Table: `id` int64 (0..rows-1) + `x` float64 uniform random; {size} in memory "
             f"for the hop and the local checkpoint, {s3_size} on S3 (SeaweedFS `weed mini` "
             f"on 127.0.0.1, same disk). {reps} repetition(s) of each row. Local datastore on "
             "ext4 under benchmarks/.data; writes go to the page cache (no fsync), like "
             "rayflow's. The hop is measured inside the flow with time.time() stamps stored "
             "as artifacts; its parts come from the task records (`finished_at` is taken "
             "after capture, before the payload is handed on and the checkpoint written). "
             "Ray started once by the script; "
             "one uncounted warm-up of each hop row first (the first put of a big object "
             "into the object store pays for its shared-memory pages). Checkpoint parts are "
             "timed alone, through the same layers, just before each save_artifacts call.\n\n")
    write_section("artifact_hop", "artifact_hop: moving and checkpointing a big Arrow table "
                  "(issues 3 and 13)", notes + table_md + "\n\nTargets:\n\n" + "\n".join(targets))


if __name__ == "__main__":
    sys.exit(main())
