"""Exceptions that rayflow raises to people.

`RayflowException` and its children are *user errors*: the CLI prints their message alone, with
no traceback, and exits non-zero. Every message names the object (flow, step, artifact, run),
where it is (file:line or a pathspec) and what to do. Anything else that escapes is an internal
bug and keeps its traceback.

`RayflowException` is also `MetaflowException`, and the classes below carry Metaflow's names
too (`rayflow.exception` re-exports them under `metaflow.exception`'s module path), so code
that raises or catches Metaflow's exceptions keeps working.
"""

from __future__ import annotations

import sys
import traceback as _traceback


class RayflowException(Exception):
    """A user-facing error. `headline` is a short category printed before the message.

    Takes Metaflow's arguments too: `MetaflowException(msg, lineno, source_file)`."""

    headline = "Error"
    exit_code = 1  # of the command that fails with it
    # Raised inside a task, rayflow's exceptions are its findings about the step: running it
    # again cannot help, so @retry and @catch leave them alone. A class that is a failure of
    # the task itself instead (as Metaflow's task_pre_step failures are: a secrets backend
    # that does not answer) sets this: @retry runs the task again, @catch catches it.
    task_failure = False

    def __init__(self, msg: str = "", lineno: int | None = None,
                 source_file: str | None = None, *, step: str | None = None,
                 line: int | None = None, file: str | None = None):
        self.msg = msg
        self.step = step
        self.line = line if line is not None else lineno
        self.file = file if file is not None else source_file
        super().__init__(msg)

    # Metaflow's attribute names for the same things.
    @property
    def message(self) -> str:
        return self.msg

    @property
    def line_no(self) -> int | None:
        return self.line

    @property
    def source_file(self) -> str | None:
        return self.file

    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        if self.line:
            return f"line {self.line}"
        return self.file or ""

    def __str__(self) -> str:
        return self.msg


class LintError(RayflowException):
    headline = "Flow check failed"


class InvalidFlowError(RayflowException):
    headline = "Invalid flow"


class ParameterError(RayflowException):
    """A value given on the command line that does not fit the flow: a usage error, which
    exits 2 as click's (and so Metaflow's) do."""

    headline = "Bad parameter"
    exit_code = 2


class ProjectOptionError(ParameterError):
    """A --branch or --production that @project refuses: Metaflow refuses it when the flow
    starts, not when it reads the command line, and exits 1."""

    exit_code = 1


class MergeArtifactsError(RayflowException):
    headline = "Cannot merge artifacts"

    def __init__(self, msg: str, artifact_names: list[str] | None = None, **kw):
        super().__init__(msg, **kw)
        self.artifact_names = artifact_names or []


class UnhandledInMergeArtifactsException(MergeArtifactsError):
    """Artifacts whose values differ between a join's inputs, and that the join neither set
    nor excluded (Metaflow's name)."""


class MissingInMergeArtifactsException(MergeArtifactsError):
    """merge_artifacts(include=...) named artifacts that no input has (Metaflow's name)."""


class InvalidNextError(RayflowException):
    headline = "Bad transition"


InvalidNextException = InvalidNextError


class UnsaveableArtifactError(RayflowException):
    """An artifact's value cannot be serialized (e.g. it holds a lock or an open socket)."""

    headline = "Cannot save artifact"

    def __init__(self, msg: str, artifact: str | None = None, **kw):
        super().__init__(msg, **kw)
        self.artifact = artifact


class DataStoreError(RayflowException):
    headline = "Datastore error"


class DataStoreUnreachable(DataStoreError):
    headline = "Datastore unreachable"


class MetaflowNotFound(RayflowException):
    """Raised by the client when a flow, run, step, task or artifact does not exist.

    Named after Metaflow's own exception so `except MetaflowNotFound` keeps working."""

    headline = "Not found"


class MetaflowInvalidPathspec(RayflowException, ValueError):
    """A pathspec with the wrong number of parts, or an empty part. Metaflow has an exception of
    the same name; it is also a ValueError because the argument's *value* is wrong."""

    headline = "Bad pathspec"


class MetaflowNamespaceMismatch(RayflowException):
    headline = "Not in namespace"


class StepFailed(RayflowException):
    """A user step raised; the run stops and can be resumed. The message carries the user's
    own traceback."""

    headline = "Step failed"


class SchedulingError(RayflowException):
    headline = "Cannot schedule"


class StepEnvironmentError(RayflowException):
    """A step's @pypi/@conda environment cannot be made (found before any task runs), or
    Ray could not build it on a node."""

    headline = "Step environment"


class MetaflowInternalError(RayflowException):
    headline = "Internal error"


class ExternalCommandFailed(RayflowException):
    headline = "External command failed"


class CommandException(RayflowException):
    headline = "Invalid command"


class MetaflowDataMissing(RayflowException):
    headline = "Data missing"


class MetaflowTaggingError(RayflowException, ValueError):
    """A tag that cannot be a tag (empty, too long, not a string). A ValueError too: the
    client raised one before, and callers may catch that."""

    headline = "Tagging error"


class MetaflowUnknownUser(RayflowException):
    headline = "Unknown user"


class InvalidDecoratorAttribute(RayflowException):
    headline = "Invalid decorator attribute"


class ParameterFieldFailed(RayflowException):
    headline = "Bad parameter field"


class ParameterFieldTypeMismatch(RayflowException):
    headline = "Bad parameter field"


class MetaflowExceptionWrapper(Exception):
    """An exception kept as an artifact (by @catch): picklable even when the original is not.
    `type` is "module.Name", `exception` its message, `stacktrace` the formatted traceback;
    `str()` is the traceback, as in Metaflow."""

    def __init__(self, exc: BaseException | None = None):
        super().__init__()
        if exc is not None:
            self.exception = str(exc)
            self.type = metaflow_type_name(type(exc))
            tb = exc.__traceback__
            self.stacktrace = "".join(
                _traceback.format_exception(type(exc), exc, tb)) if tb is not None or \
                sys.exc_info()[0] is not None else None

    def __reduce__(self):
        return MetaflowExceptionWrapper, (None,), self.__dict__

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__ = state

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        if self.stacktrace:
            return self.stacktrace
        return f"[no stacktrace]\n{self.type}: {self.exception}"


MetaflowException = RayflowException


class FailureHandledByCatch(RayflowException):
    """What @catch stores when the step's process kept dying on every attempt, so the step's
    code never got to raise anything (Metaflow's name and words)."""

    headline = "Task execution failed but @catch handled it"

    def __init__(self, retry_count: int = 0):
        super().__init__(
            f"Task execution kept failing over {retry_count} attempts. Your code did not "
            f"raise an exception. Something in the execution environment caused the failure.")
        self.retry_count = retry_count

    def __reduce__(self):
        return (type(self), (self.retry_count,))


class TimeoutException(Exception):
    """Raised inside a step by @timeout. Not a RayflowException: it is the step's failure."""


# rayflow's classes that stand for Metaflow's, under the names Metaflow gives them. Code written
# for Metaflow compares a caught exception's type *name* with these (`ex.type ==
# "metaflow.exception.ExternalCommandFailed"`), so @catch records the Metaflow name for them.
_METAFLOW_MODULES = {
    "TimeoutException": "metaflow.plugins.timeout_decorator",
    "FailureHandledByCatch": "metaflow.plugins.catch_decorator",
}
_METAFLOW_EXCEPTION_NAMES = (
    "MetaflowException", "ExternalCommandFailed", "MetaflowNotFound",
    "MetaflowNamespaceMismatch", "MetaflowInvalidPathspec", "MetaflowInternalError",
    "MetaflowTaggingError", "MetaflowUnknownUser", "InvalidDecoratorAttribute",
    "CommandException", "MetaflowDataMissing", "UnhandledInMergeArtifactsException",
    "MissingInMergeArtifactsException", "ParameterFieldFailed", "ParameterFieldTypeMismatch",
)


def metaflow_type_name(cls: type) -> str:
    """"module.Name" of an exception class, with Metaflow's module for rayflow's stand-ins
    of Metaflow's classes (RayflowException is "metaflow.exception.MetaflowException")."""
    if cls.__module__ == __name__:
        name = "MetaflowException" if cls is RayflowException else cls.__name__
        if name in _METAFLOW_MODULES:
            return f"{_METAFLOW_MODULES[name]}.{name}"
        if name in _METAFLOW_EXCEPTION_NAMES:
            return f"metaflow.exception.{name}"
    return f"{cls.__module__}.{cls.__name__}"
