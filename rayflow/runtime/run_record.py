"""The run's own records, written by the driver: the run record's final status, the
heartbeat that tells a live run from one whose driver died, the run report, and the run-id
files a caller waits for (`--run-id-file`, `--runner-attribute-file`).

The run loop (`run_loop.py`) builds the run record; `rayflow spin` (`spin.py`) uses the same
run-id files and user name.
"""

from __future__ import annotations

import os
import time

from .. import settings
from ..exceptions import DataStoreError, RayflowException
from ..report.failures import resume_command_of, run_duration


def finish_run_record(ds, rec, status: str, flow_file: str, rows=None) -> float | None:
    """Write the run's final status, and the span of its tasks (`rows`, the report's
    TaskRows); returns the run's one duration (`run_duration`). When the run failed, a
    failed write must not hide the run's own error. When it succeeded, the failed write is
    the run's error: a run whose record still says "running" has not finished."""
    rec.status = status
    rec.finished_at = time.time()
    if rows is not None:
        rec.tasks_started_at, rec.tasks_finished_at = rows.first, rows.last
    try:
        ds.write_run(rec)
    except Exception as exc:  # noqa: BLE001 - any storage failure
        if status != "success":
            return run_duration(rec)
        raise DataStoreError(
            f"Run {rec.pathspec} finished, but its run record could not be written to the "
            f"datastore {ds.url}: {type(exc).__name__}: {exc}. Once the datastore is "
            f"reachable again, record the run with: {resume_command_of(rec)}") from exc
    return run_duration(rec)


def write_run_report(ds, run_id: str, graph_info, rows, say, pools=None) -> str | None:
    """The run report (rayflow.report), beside the run's records. A report that cannot be
    written costs the run nothing: it says why and `rayflow card` can build it later.
    `rows`: the report's rows the driver kept, or None to read them from the records.
    `pools`: an actor-pool run's PoolLog, kept beside the records for the report."""
    from ..report import write_report
    from ..report.pools import save_pool_log

    if pools is not None and pools.events:
        try:
            save_pool_log(ds, run_id, pools)
        except Exception as exc:  # noqa: BLE001 - it never fails a run
            say(f"The actor pools' history could not be saved ({type(exc).__name__}: {exc})")
    if settings.NO_REPORT.get():
        return None

    try:
        return write_report(ds, run_id, graph_info, rows)
    except Exception as exc:  # noqa: BLE001 - the report never fails a run
        say(f"The run report could not be written ({type(exc).__name__}: "
            f"{exc}); build it with: rayflow card {ds.flow_name}/{run_id}")
        return None


class Heartbeat:
    """Renews the run's heartbeat every HEARTBEAT_S from a daemon thread while the run goes
    on, so that readers can tell a run that is running from one whose driver died. A failed
    renewal is tried again at the next beat; it never stops the run."""

    def __init__(self, ds, run_id: str):
        import threading

        from ..datastore.flow_datastore import HEARTBEAT_S
        from ..datastore.lease import driver_identity

        self._ds, self._run_id = ds, run_id
        self._info = driver_identity()  # a reader on this host sees at once when it ends
        self._every = HEARTBEAT_S
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="rayflow-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self._ds.write_heartbeat(self._run_id, self._info)
        except Exception:  # noqa: BLE001 - the next beat tries again; the run goes on
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._beat()

    def stop(self) -> None:
        self._stop.set()


def write_run_id_file(path: str, text: str, what: str = "--run-id-file") -> None:
    """Write `text` whole: into a temporary file beside `path`, then renamed, so a reader
    polling for the file never sees it half written."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise RayflowException(
            f"Cannot write the run id to {what} {path!r}: {exc.strerror}. Pass a path "
            f"in a folder you can write to.") from None


def username() -> str:
    from ..client import get_username

    return get_username()


def version_tags() -> list[str]:
    """A run's system tags for what ran it, as Metaflow's python_version: and
    metaflow_version: tags (rayflow's own version under its own name)."""
    import platform

    from .. import __version__

    return [f"python_version:{platform.python_version()}", f"rayflow_version:{__version__}"]
