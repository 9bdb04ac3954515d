"""TaskError: why a task failed, one typed value from the worker to the CLI's message.

A task can fail for four kinds of reason, and each kind is handled differently all the way up:

- `user`: the step's own code raised (its traceback is the user's), or rayflow found a mistake
  in what the step did (a bad transition, an artifact that cannot be saved). The first is
  retried as `@retry` says; the second is not, since running it again cannot help.
- `datastore`: the datastore could not be read or written. The run stops and can be resumed
  once the datastore is reachable again.
- `scheduling`: no node of the cluster can ever run the task. The run stops; resume it once
  the cluster can.
- `system`: the worker process or its node died, or Ray lost the task. Retried as `@retry`
  says, on top of Ray's own retries for lost workers.

`TaskError.from_exception` is the one place an exception becomes a kind, and
`raise_for_failures` the one place a kind becomes the user-facing exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..exceptions import (
    DataStoreError,
    DataStoreUnreachable,
    RayflowException,
    SchedulingError,
    StepFailed,
)
from .wire import by_position


class ErrorKind(str, Enum):
    USER = "user"
    DATASTORE = "datastore"
    SCHEDULING = "scheduling"
    SYSTEM = "system"


@by_position
@dataclass(frozen=True, slots=True)
class TaskError:
    kind: ErrorKind
    type: str          # the exception's class, "module.QualName"
    message: str
    traceback: str = ""
    retryable: bool = True

    @classmethod
    def from_exception(cls, exc: BaseException, traceback: str = "",
                       raised_by_user: bool = False) -> TaskError:
        """Classify an exception raised while a task ran (in the worker or the driver).
        `raised_by_user`: the step's own code raised it, even if it is a RayflowException
        (MetaflowException is one), so @retry applies to it as to any other."""
        name = _qualname(exc)
        from .crash import StepCrashed

        if isinstance(exc, StepCrashed):  # the step's own crash: @retry decides
            return cls(ErrorKind.USER, name, str(exc), traceback, retryable=True)
        if isinstance(exc, SchedulingError):
            return cls(ErrorKind.SCHEDULING, name, str(exc), traceback, retryable=False)
        if isinstance(exc, DataStoreError):
            # An unreachable datastore may come back; a corrupt one will not.
            return cls(ErrorKind.DATASTORE, name, str(exc), traceback,
                       retryable=isinstance(exc, DataStoreUnreachable))
        # A RayflowException inside a task is rayflow noticing the step's mistake: running
        # the same code again gives the same mistake.
        return cls(ErrorKind.USER, name, str(exc), traceback,
                   retryable=raised_by_user or not isinstance(exc, RayflowException))

    @classmethod
    def system(cls, exc: BaseException) -> TaskError:
        """The worker or its node died, or Ray lost the task: `exc` is Ray's error."""
        return cls(ErrorKind.SYSTEM, _qualname(exc), str(exc))

    def to_json(self) -> dict:
        """The form kept in a failed attempt's task record."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback,
                "kind": self.kind.value}

    def describe(self) -> str:
        return self.traceback or f"{self.type}: {self.message}"


def _qualname(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def raise_for_failures(summary) -> None:
    """Turn a failed run (a `RunSummary`) into the user-facing exception for its first failed
    task: what went wrong, where, and the command that continues the run."""
    from ..report.failures import resume_command

    if summary.successful:
        return
    resume = resume_command(summary.flow_file, summary.run_id, summary.datastore or None)
    if not summary.failures:
        raise RayflowException(
            f"Run {summary.pathspec} did not finish. Continue it with: {resume}")
    first = summary.failures[0]
    err: TaskError = first.error
    pathspec = f"{summary.pathspec}/{first.step}/{first.task_id}"
    if err.kind is ErrorKind.SCHEDULING:
        raise SchedulingError(
            f"{err.message}\nThe run stopped at task {pathspec}. Once the cluster can run it, "
            f"continue with: {resume}", step=first.step)
    if err.kind is ErrorKind.DATASTORE:
        raise DataStoreUnreachable(
            f"{err.message}\nThe run stopped at task {pathspec}. Once the datastore is "
            f"reachable again, continue with: {resume}", step=first.step)
    more = (f" ({len(summary.failures) - 1} more failed tasks: `rayflow status "
            f"{summary.pathspec}` lists them)") if len(summary.failures) > 1 else ""
    if err.kind is ErrorKind.SYSTEM and not err.traceback:
        # Not the step's code: its worker or node died, or Ray lost the task.
        raise StepFailed(
            f"Step {first.step!r} failed in task {pathspec} (attempt {first.attempt}){more}: "
            f"{err.message} ({err.type})\nNothing of that task was recorded as done. Continue "
            f"the run with: {resume}", step=first.step)
    if err.kind is ErrorKind.USER and not err.traceback and (
            not err.retryable or err.type.startswith("rayflow.")):
        # rayflow's own finding about the step, or a failure of its task that rayflow worded
        # (a secrets source that could not be read): its message already says what to do.
        raise StepFailed(
            f"Step {first.step!r} failed in task {pathspec} (attempt {first.attempt}){more}: "
            f"{err.message}\nThen continue the run with: {resume}", step=first.step)
    raise StepFailed(
        f"Step {first.step!r} failed in task {pathspec} (attempt {first.attempt}){more}:\n\n"
        f"{err.describe().rstrip()}\n\nFix the step, then continue the run with: {resume}",
        step=first.step)
