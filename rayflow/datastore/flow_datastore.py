"""FlowDataStore: one flow's runs, tasks, artifacts, tags and logs in a datastore.

It owns the layout under the datastore root and the commit protocol:

    <Flow>/data/<h[:2]>/<h>                          artifact blobs (ContentAddressedStore)
    <Flow>/<run_id>/_run.json                        RunRecord
    <Flow>/<run_id>/_tags.json                       user tags, mutable after the run
    <Flow>/<run_id>/<step>/<task_id>/<attempt>.json  TaskRecord
    <Flow>/<run_id>/<step>/<task_id>/<attempt>.stdout, .stderr   task logs
    <Flow>/<run_id>/<step>/<task_id>/DONE            written last; holds the attempt number
    <Flow>/<run_id>/<step>/_bundles/<a>~<b>~<n>~<attempt>.json   records of a batch of splits
                                                     (bundles.py); the write is their DONE
    <Flow>/<run_id>/<step>/_segments/<a>~<n>~<attempt>.seg    a batch's join inputs, for the
                                                     join's worker (runtime/fanout.py)

Small artifacts live inline in their task record rather than in a blob (artifact_store.py).

Blobs are written first, then the task record, then DONE; a reader trusts only tasks with DONE
(or a successful record in a bundle).
A crash at any point leaves either a finished task or garbage that nothing references.

It must never decide *when* a task is finished (the runtime does), never cache what it reads
(another process may be writing the same run), and never import ray.
"""

from __future__ import annotations

import random
import re
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

from rayflow.datastore.artifact_store import ArtifactStore
from rayflow.datastore.bundles import BUNDLE_DIR, TaskBundles, whole
from rayflow.datastore.cas import DATA_DIR, ContentAddressedStore
from rayflow.datastore.lease import driver_gone
from rayflow.datastore.records import (
    ArtifactInfo,
    DamagedRecordError,
    DamagedRecordWarning,
    RunRecord,
    TaskRecord,
    damaged_advice,
    dumps_record,
    gc_paused,
    loads_record,
    natural_key,
)
from rayflow.datastore.storage import DataStoreStorage, get_storage
from rayflow.exceptions import DataStoreError

RUN_RECORD = "_run.json"
HEARTBEAT = "_heartbeat.json"
# A running run's driver renews its heartbeat this often; a reader calls the run
# "interrupted" once its heartbeat is older than the lease (the driver died, or lost the
# datastore, without recording an end): LEASE_S, or RAYFLOW_RUN_LEASE_S seconds.
HEARTBEAT_S = 10.0
LEASE_S = 60.0


def run_lease_seconds() -> float:
    from .. import settings

    return settings.RUN_LEASE_S.get()
TAGS_FILE = "_tags.json"
DONE_MARKER = "DONE"
# `rayflow spin` keeps the tasks it runs in a datastore of their own, this folder of the
# datastore of the runs they come from.
SPIN_DIR = "_spin"
LOG_STREAMS = ("stdout", "stderr")
_ATTEMPT_FILE = re.compile(r"^(\d+)\.json$")


_RUN_ID_LOCK = threading.Lock()
_LAST_RUN_ID = 0


def _is_listable(name: str) -> bool:
    """Run, step and task folders; not blobs, records ("_run.json") or temporary files."""
    return name != DATA_DIR and not name.startswith(("_", "."))


# File systems (and S3 keys, in practice) take at most 255 bytes for one name in a path.
MAX_NAME_BYTES = 255


def _check_name(kind: str, value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise DataStoreError(
            f"{kind} {value!r} cannot name a folder in the datastore: it must be non-empty and "
            "contain no '/'. Rename it.")
    if "\x00" in value:
        raise DataStoreError(
            f"{kind} {value[:80]!r} contains a NUL byte, which no file or object name can "
            f"hold. Check where it came from (a pathspec, a flow or step name).")
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise DataStoreError(
            f"{kind} {value[:40]!r}... is {size} bytes long: it names a folder in the "
            f"datastore, and a folder's name is at most {MAX_NAME_BYTES} bytes. Use a "
            f"shorter name.")
    return value


class FlowDataStore:
    """Runs, tasks and artifacts of the flow `flow_name`, stored in `storage`."""

    def __init__(self, storage: DataStoreStorage, flow_name: str):
        self.storage = storage
        self.flow_name = _check_name("Flow name", flow_name)
        self.cas = ContentAddressedStore(storage, flow_name)
        self.artifacts = ArtifactStore(self.cas, compress=not storage.is_local)
        self.bundles = TaskBundles(storage, self.step_path, self._pathspec)

    @classmethod
    def from_url(cls, url: str, flow_name: str) -> FlowDataStore:
        return cls(get_storage(url), flow_name)

    def __reduce__(self):
        # Rebuilt from its parts in a worker: no counters, locks or clients cross processes.
        return (type(self), (self.storage, self.flow_name))

    def __repr__(self) -> str:
        return f"FlowDataStore({self.url!r}, {self.flow_name!r})"

    @property
    def url(self) -> str:
        return self.storage.url

    # -- paths -------------------------------------------------------------------------------
    def run_path(self, run_id: str) -> str:
        return f"{self.flow_name}/{_check_name('Run id', str(run_id))}"

    def step_path(self, run_id: str, step: str) -> str:
        return f"{self.run_path(run_id)}/{_check_name('Step name', step)}"

    def task_path(self, run_id: str, step: str, task_id: str) -> str:
        return f"{self.step_path(run_id, step)}/{_check_name('Task id', str(task_id))}"

    def _pathspec(self, *parts: str) -> str:
        return "/".join([self.flow_name, *map(str, parts)])

    # -- runs --------------------------------------------------------------------------------
    @staticmethod
    def new_run_id() -> str:
        """Microseconds since the epoch with 3 random low digits: ids sort by start time, and
        two machines starting a run in the same microsecond still differ (999 times in 1000).
        Within one process ids only grow, so they never repeat there."""
        global _LAST_RUN_ID
        with _RUN_ID_LOCK:
            candidate = time.time_ns() // 1000 * 1000 + random.randrange(1000)
            _LAST_RUN_ID = max(candidate, _LAST_RUN_ID + 1)
            return str(_LAST_RUN_ID)

    def write_run(self, rec: RunRecord) -> None:
        what = f"run record of {rec.pathspec}"
        self.storage.put(f"{self.run_path(rec.run_id)}/{RUN_RECORD}",
                         dumps_record(rec.to_json(), what))

    def write_heartbeat(self, run_id: str, info: dict) -> None:
        self.storage.put(f"{self.run_path(run_id)}/{HEARTBEAT}",
                         dumps_record({**info, "at": time.time()}, f"heartbeat of {run_id}"))

    def read_lease(self, run_id: str) -> dict:
        """The run's last heartbeat: when its driver last said it was alive ("at") and who
        that driver is (lease.driver_identity); {} if it never said so."""
        try:
            raw = self.storage.get(f"{self.run_path(run_id)}/{HEARTBEAT}")
            return loads_record(raw, f"heartbeat of {run_id}")
        except (FileNotFoundError, DataStoreError):
            return {}

    def read_heartbeat(self, run_id: str) -> float | None:
        """When the run's driver last said it was alive; None if it never did."""
        try:
            return float(self.read_lease(run_id)["at"])
        except (KeyError, TypeError, ValueError):
            return None

    def run_status(self, rec: RunRecord, now: float | None = None) -> str:
        """The record's status, except that a "running" run whose driver is gone is
        "interrupted": it will not end by itself, and can be resumed. A driver is gone once
        it stopped renewing its heartbeat (for LEASE_S), or at once when a reader on its
        host sees its process has ended (it stopped where it could not record its end)."""
        if rec.status != "running":
            return rec.status
        lease = self.read_lease(rec.run_id)
        if driver_gone(lease):
            return "interrupted"
        try:
            beat = float(lease["at"])
        except (KeyError, TypeError, ValueError):
            beat = rec.started_at
        now = time.time() if now is None else now
        return "interrupted" if now - beat > run_lease_seconds() else "running"

    def read_run(self, run_id: str) -> RunRecord | None:
        try:
            raw = self.storage.get(f"{self.run_path(run_id)}/{RUN_RECORD}")
        except FileNotFoundError:
            return None
        return RunRecord.from_json(loads_record(raw, f"run record of "
                                                     f"{self._pathspec(run_id)}"))

    def list_run_ids(self) -> list[str]:
        """Newest first (run ids from `new_run_id` are numeric and grow with time)."""
        names = [n for n in self.storage.list(self.flow_name) if _is_listable(n)]
        return sorted(names, key=natural_key, reverse=True)

    def read_tags(self, run_id: str) -> list[str]:
        """User tags: `_tags.json` once written, else the tags the run started with."""
        try:
            raw = self.storage.get(f"{self.run_path(run_id)}/{TAGS_FILE}")
        except FileNotFoundError:
            run = self.read_run(run_id)
            return list(run.tags) if run else []
        tags = loads_record(raw, f"tags of {self._pathspec(run_id)}").get("tags", [])
        return [str(t) for t in tags]

    def write_tags(self, run_id: str, tags: Sequence[str]) -> None:
        what = f"tags of {self._pathspec(run_id)}"
        unique = list(dict.fromkeys(str(t) for t in tags))  # keeps the caller's order
        self.storage.put(f"{self.run_path(run_id)}/{TAGS_FILE}",
                         dumps_record({"tags": unique}, what))

    # -- artifacts ---------------------------------------------------------------------------
    # Every artifact is saved and loaded through `self.artifacts` (artifact_store.py).
    def save_artifacts(self, items: dict[str, Any]) -> dict[str, ArtifactInfo]:
        """Serialize and store values; blobs that already exist cost one existence check."""
        return self.artifacts.save_values(items)

    def load_artifact(self, info: ArtifactInfo, what: str = "") -> Any:
        """The value, checked against its hash; `what` names it in errors."""
        return self.artifacts.load(info, what)

    def load_artifacts(self, infos: dict[str, ArtifactInfo], what: str = "") -> dict[str, Any]:
        """Several artifacts, their blobs fetched in one parallel batch."""
        return self.artifacts.load_many(infos, what)

    # -- tasks -------------------------------------------------------------------------------
    def _record_item(self, rec: TaskRecord) -> tuple[str, bytes]:
        path = f"{self.task_path(rec.run_id, rec.step, rec.task_id)}/{int(rec.attempt)}.json"
        return path, dumps_record(rec.to_json(), f"task record of {rec.pathspec}")

    def _done_item(self, rec: TaskRecord) -> tuple[str, bytes]:
        path = f"{self.task_path(rec.run_id, rec.step, rec.task_id)}/{DONE_MARKER}"
        return path, str(int(rec.attempt)).encode()

    def write_task(self, rec: TaskRecord) -> None:
        """The record, then DONE if the attempt succeeded (its artifacts must be saved first)."""
        self.storage.put(*self._record_item(rec))
        if rec.status == "success":
            self.storage.put(*self._done_item(rec))

    def write_tasks(self, recs: Sequence[TaskRecord], bundle: bool = False) -> None:
        """Many tasks. By default every record in one parallel batch, then every DONE in
        another, so no DONE can land before its record. With `bundle=True` (tasks of one step
        of one run, e.g. a batch of foreach splits) all records go into one bundle file, whose
        single atomic write commits the successful ones: that is their DONE."""
        if bundle and len(recs) > 1 and len({(r.run_id, r.step) for r in recs}) == 1:
            self.bundles.write(recs)
            return
        self.storage.put_many([self._record_item(r) for r in recs])
        self.storage.put_many([self._done_item(r) for r in recs if r.status == "success"])

    def _done_attempt(self, run_id: str, step: str, task_id: str) -> int | None:
        try:
            raw = self.storage.get(f"{self.task_path(run_id, step, task_id)}/{DONE_MARKER}")
        except FileNotFoundError:
            return None
        return self._marker_attempt(run_id, step, task_id, raw)

    def _marker_attempt(self, run_id: str, step: str, task_id: str, raw: bytes) -> int:
        try:
            return int(raw.decode().strip())
        except ValueError:
            where = self.storage.describe(f"{self.task_path(run_id, step, task_id)}/DONE")
            raise DamagedRecordError(damaged_advice(
                f"DONE marker of task {self._pathspec(run_id, step, task_id)} (it holds "
                f"{raw[:40]!r}, not an attempt number)", where)) from None

    def _task_record(self, raw: bytes, path: str, what: str) -> TaskRecord:
        """A task record from its file's bytes; a damaged one is an error naming the file."""
        try:
            return TaskRecord.from_json(loads_record(raw, what))
        except DamagedRecordError:
            raise DamagedRecordError(damaged_advice(what, self.storage.describe(path))) \
                from None

    def _skip_damaged(self, exc: DamagedRecordError) -> None:
        """A listing leaves out what it cannot read, and says which file that is."""
        warnings.warn(str(exc), DamagedRecordWarning, stacklevel=3)

    def _latest_attempt(self, run_id: str, step: str, task_id: str) -> int | None:
        attempts = [int(m.group(1)) for name in self.storage.list(
            self.task_path(run_id, step, task_id)) if (m := _ATTEMPT_FILE.match(name))]
        return max(attempts) if attempts else None

    def read_task(self, run_id: str, step: str, task_id: str,
                  attempt: int | None = None) -> TaskRecord | None:
        """One attempt's record. `attempt=None`: the attempt named in DONE, else the highest
        attempt found (a failed or unfinished task). None when there is no such record."""
        bundled = None
        if attempt is None:
            attempt = self._done_attempt(run_id, step, task_id)
        if attempt is None:
            bundled = self.bundles.best_of(run_id, step, task_id)
            if bundled is not None and bundled.status == "success":
                return bundled
            attempt = self._latest_attempt(run_id, step, task_id)
            if attempt is None or (bundled is not None and bundled.attempt > attempt):
                return bundled
        path = f"{self.task_path(run_id, step, task_id)}/{int(attempt)}.json"
        try:
            raw = self.storage.get(path)
        except FileNotFoundError:
            bundled = bundled or self.bundles.best_of(run_id, step, task_id)
            return bundled if bundled is not None and bundled.attempt == attempt else None
        what = f"task record of {self._pathspec(run_id, step, task_id)} attempt {attempt}"
        return self._task_record(raw, path, what)

    def is_done(self, run_id: str, step: str, task_id: str) -> bool:
        if self.storage.exists(f"{self.task_path(run_id, step, task_id)}/{DONE_MARKER}"):
            return True
        bundled = self.bundles.best_of(run_id, step, task_id)
        return bundled is not None and bundled.status == "success"

    def list_steps(self, run_id: str) -> list[str]:
        return [n for n in self.storage.list(self.run_path(run_id)) if _is_listable(n)]

    def _task_dirs(self, run_id: str, step: str) -> list[str]:
        return [n for n in self.storage.list(self.step_path(run_id, step)) if _is_listable(n)]

    def list_tasks(self, run_id: str, step: str) -> list[str]:
        names = set(self._task_dirs(run_id, step)) | set(self.bundles.best_all(run_id, step))
        return sorted(names, key=natural_key)

    def done_task_ids(self, run_id: str, step: str) -> set[str]:
        """Tasks of a step that finished; one parallel batch of existence checks, plus the
        successful tasks of every bundle."""
        task_ids = self._task_dirs(run_id, step)
        done = self.storage.exists_many(
            [f"{self.task_path(run_id, step, t)}/{DONE_MARKER}" for t in task_ids])
        out = {t for t, is_done in zip(task_ids, done) if is_done}
        out.update(t for t, rec in self.bundles.best_all(run_id, step).items()
                   if rec.status == "success")
        return out

    def step_records(self, run_id: str, step: str) -> dict[str, tuple[TaskRecord, bool]]:
        """Every task of a step: task id -> (the record `read_task` gives it, whether it is
        DONE), for the cost of one recursive listing of the step, one parallel read of its
        bundles, one of its DONE markers and one of the records it needs; not a few requests
        per task."""
        base = self.step_path(run_id, step)
        dirs: dict[str, tuple[set[int], list[bool]]] = {}
        bundle_names: list[str] = []
        for key in self.storage.walk(base):
            head, _, name = key.partition("/")
            if head == BUNDLE_DIR:
                if name.endswith(".json") and "/" not in name:
                    bundle_names.append(name)
                continue
            if not name or "/" in name or not _is_listable(head):
                continue
            attempts, done = dirs.setdefault(head, (set(), [False]))
            if (m := _ATTEMPT_FILE.match(name)) is not None:
                attempts.add(int(m.group(1)))
            elif name == DONE_MARKER:
                done[0] = True
        bundled = self.bundles.best_all_of(run_id, step, bundle_names)
        done_ids = [t for t, (_, done) in dirs.items() if done[0]]
        markers = self.storage.get_many([f"{base}/{t}/{DONE_MARKER}" for t in done_ids])
        want: dict[str, int] = {}
        for task_id, raw in zip(done_ids, markers):
            try:
                want[task_id] = self._marker_attempt(run_id, step, task_id, raw)
            except DamagedRecordError as exc:
                self._skip_damaged(exc)
                dirs.pop(task_id)
        for task_id, (attempts, done) in dirs.items():
            if done[0]:
                continue
            b = bundled.get(task_id)
            latest = max(attempts) if attempts else None
            if (b is not None and b.status == "success") or latest is None or \
                    (b is not None and b.attempt > latest):
                continue
            want[task_id] = latest
        readable = {t: a for t, a in want.items() if a in dirs[t][0]}
        raws = self.storage.get_many([f"{base}/{t}/{a}.json" for t, a in readable.items()])
        with gc_paused():
            out = self._index_of(run_id, step, bundled, readable, raws, dirs)
        for task_id in set(want) - set(readable):  # DONE, its record kept in a bundle
            if task_id in bundled:
                out[task_id] = (bundled[task_id], True)
        return out

    def _index_of(self, run_id, step, bundled, readable, raws, dirs) -> dict:
        out: dict[str, tuple[TaskRecord, bool]] = {
            t: (rec, rec.status == "success") for t, rec in bundled.items()}
        base = self.step_path(run_id, step)
        for (task_id, attempt), raw in zip(readable.items(), raws):
            what = f"task record of {self._pathspec(run_id, step, task_id)} attempt {attempt}"
            try:
                rec = self._task_record(raw, f"{base}/{task_id}/{attempt}.json", what)
            except DamagedRecordError as exc:
                self._skip_damaged(exc)  # a bundled record of the task, if any, stays
                continue
            b = bundled.get(task_id)
            out[task_id] = (rec, dirs[task_id][1][0] or (b is not None and
                                                        b.status == "success"))
        return out

    def done_records(self, run_id: str, step: str) -> dict[str, TaskRecord]:
        """Every finished task of a step with its whole record (what resume clones from)."""
        out = {t: whole(rec) for t, rec in self.bundles.best_all(run_id, step).items()
               if rec.status == "success"}
        for task_id in self._task_dirs(run_id, step):
            try:
                attempt = self._done_attempt(run_id, step, task_id)
                rec = None if attempt is None else self.read_task(run_id, step, task_id,
                                                                  attempt)
            except DamagedRecordError as exc:  # not done: a resume runs it again
                self._skip_damaged(exc)
                continue
            if rec is not None:
                out[task_id] = rec
        return out

    # -- logs --------------------------------------------------------------------------------
    def _log_path(self, run_id: str, step: str, task_id: str, attempt: int, stream: str) -> str:
        if stream not in LOG_STREAMS:
            raise DataStoreError(f"Log stream {stream!r} of task "
                                 f"{self._pathspec(run_id, step, task_id)} is not one of "
                                 f"{', '.join(LOG_STREAMS)}.")
        return f"{self.task_path(run_id, step, task_id)}/{int(attempt)}.{stream}"

    def save_log(self, run_id: str, step: str, task_id: str, attempt: int, stream: str,
                 text: str) -> None:
        path = self._log_path(run_id, step, task_id, attempt, stream)
        # A log may hold bytes a program printed in another encoding; never fail a task on it.
        self.storage.put(path, text.encode("utf-8", errors="replace"))

    def load_log(self, run_id: str, step: str, task_id: str, attempt: int, stream: str) -> str:
        """The saved text, or "" when the attempt saved no log (as Metaflow's client does)."""
        try:
            raw = self.storage.get(self._log_path(run_id, step, task_id, attempt, stream))
        except FileNotFoundError:
            return ""
        return raw.decode("utf-8", errors="replace")
