"""What went wrong in a run, told where users look (the run report, `rayflow status`, the
terminal): each failed task's step and pathspec, its exception, the user's traceback (the
worker keeps only the frames from the user's step down), the last lines the task printed,
and the exact command that resumes the run.

Also the one duration of a run (`run_duration`), shown alike by the terminal, `rayflow runs`,
`rayflow status` and the report.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from ..datastore.logs import decode_timed_log

MAX_SHOWN = 5   # failed tasks described in full; the rest are counted
LOG_LINES = 12  # the last lines a failed task printed


@dataclass
class Failure:
    step: str
    task_id: str
    pathspec: str
    attempt: int
    type: str        # the exception's class ("ValueError", "mymodule.MyError")
    message: str
    traceback: str   # the user's own frames; "" when rayflow (or Ray) found the problem
    kind: str        # user, datastore, scheduling, system
    finished_at: float = 0.0
    log_tail: list[str] = field(default_factory=list)


def short_type(qualname: str) -> str:
    """`builtins.ValueError` reads as `ValueError`; other modules keep their name."""
    return qualname.split(".", 1)[1] if qualname.startswith("builtins.") else qualname


def find_failures(ds, run_id: str, steps: list[str] | None = None,
                  limit: int = MAX_SHOWN) -> tuple[list[Failure], int]:
    """(the first `limit` failed tasks of the run, by when they failed; how many failed)."""
    failed = []
    for step in steps or ds.list_steps(run_id):
        try:
            index = ds.step_records(run_id, step)
        except FileNotFoundError:
            continue
        for rec, done in index.values():
            if not done and rec.status != "success":
                failed.append(rec)
    failed.sort(key=lambda r: (r.finished_at or 0.0, r.step, r.task_id))
    return [_failure(ds, rec) for rec in failed[:limit]], len(failed)


def _failure(ds, rec) -> Failure:
    exc = rec.exception or {}
    tb = (exc.get("traceback") or "").rstrip()
    f = Failure(rec.step, rec.task_id, rec.pathspec, rec.attempt,
                short_type(exc.get("type") or "unknown error"), exc.get("message") or "", tb,
                exc.get("kind") or "user", rec.finished_at)
    f.log_tail = _log_tail(ds, rec, tb)
    return f


def _log_tail(ds, rec, tb: str) -> list[str]:
    """The last lines the task printed (stdout and stderr by time), without the traceback
    the worker wrote at the end of its stderr (shown on its own)."""
    lines = []
    for stream in ("stdout", "stderr"):
        try:
            text = ds.load_log(rec.run_id, rec.step, rec.task_id, rec.attempt, stream)
        except Exception:  # noqa: BLE001 - a log that cannot be read leaves its lines out
            continue
        got = list(decode_timed_log(text))
        if stream == "stderr" and tb:
            tb_lines = tb.splitlines()
            if [line for _, line in got[-len(tb_lines):]] == tb_lines:
                got = got[:-len(tb_lines)]
        lines += [(when.timestamp() if when else 0.0, i, line) for i, (when, line)
                  in enumerate(got)]
    lines.sort(key=lambda x: (x[0], x[1]))
    return [line for _, _, line in lines[-LOG_LINES:]]


def resume_command(flow_file: str, run_id: str, datastore_url: str | None = None,
                   address: str | None = None, flow_name: str | None = None) -> str:
    """The command that resumes the run, as the user types it: the flow file (as short as
    it stays clear from here), the run, and the options it needs to find that run again (the
    datastore unless it is the default one here; the cluster it ran on)."""
    from ..datastore import default_datastore_url
    from ..runtime.flowfile import display_path

    words = ["rayflow", "resume", display_path(flow_file), "--origin-run-id", run_id]
    if datastore_url:
        try:
            default = default_datastore_url()
        except Exception:  # noqa: BLE001 - an unusable default: name the run's own
            default = None
        if datastore_url != default:
            words += ["--datastore", datastore_url]
    if address:
        words += ["--address", address]
    if flow_name:
        words += ["--flow", flow_name]
    return shlex.join(words)


def resume_command_of(rec) -> str:
    """`resume_command` for a run record."""
    address = rec.ray_address if getattr(rec, "ray_kind", None) == "cluster" else None
    return resume_command(rec.flow_file, rec.run_id, rec.datastore or None, address)


def run_duration(rec, now: float | None = None) -> float | None:
    """A run's one duration: from the start of its first task to the end of its last, its
    cloned tasks counted when this run cloned them; never negative. A run recorded before
    rayflow kept its tasks' span counts from the run's own start to its end."""
    first, last = getattr(rec, "tasks_started_at", None), getattr(rec, "tasks_finished_at", None)
    if first and last:
        return max(0.0, last - first)
    if not rec.started_at:
        return None
    end = rec.finished_at or (time.time() if now is None else now)
    return max(0.0, end - rec.started_at)


def format_duration(seconds: float | None) -> str:
    """One spelling of a duration for every place that shows one: 0.42 s, 12.3 s, 4 min 05 s."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def failure_text(failures: list[Failure], total: int, resume: str, status: str) -> list[str]:
    """The failures as plain text lines (for `rayflow status`)."""
    out = []
    if status == "interrupted":
        out.append(INTERRUPTED + (" Tasks it was running then may show as failed below."
                                  if failures else ""))
    elif not failures:
        out.append("The run failed before any task failed (its driver could not go on).")
    for f in failures:
        out.append(f"Failed: step {f.step}, task {f.pathspec} (attempt {f.attempt})")
        out.append(f"  {f.type}: {f.message}" if f.message else f"  {f.type}")
        if f.traceback:
            out.append("  Traceback (the step's own frames):")
            out += ["    " + line for line in f.traceback.splitlines()]
        if f.log_tail:
            out.append(f"  Last {len(f.log_tail)} log lines:")
            out += ["    " + line for line in f.log_tail]
    if total > len(failures):
        out.append(f"... and {total - len(failures)} more failed tasks.")
    out.append(f"{'Fix the flow, then r' if failures and status != 'interrupted' else 'R'}"
               f"esume with: {resume}")
    return out


INTERRUPTED = ("The run's driver stopped before the run ended (interrupted, killed, or it lost "
               "the cluster or the datastore): what finished is kept, and a resume runs the "
               "rest.")
