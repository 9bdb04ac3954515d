"""Exceptions that rayflow raises to people.

`RayflowException` and its children are *user errors*: the CLI prints their message alone, with
no traceback, and exits non-zero. Every message names the object (flow, step, artifact, run),
where it is (file:line or a pathspec) and what to do. Anything else that escapes is an internal
bug and keeps its traceback.
"""

from __future__ import annotations


class RayflowException(Exception):
    """A user-facing error. `headline` is a short category printed before the message."""

    headline = "Error"

    def __init__(self, msg: str = "", *, step: str | None = None, line: int | None = None,
                 file: str | None = None):
        self.msg = msg
        self.step = step
        self.line = line
        self.file = file
        super().__init__(msg)

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
    headline = "Bad parameter"


class MergeArtifactsError(RayflowException):
    headline = "Cannot merge artifacts"

    def __init__(self, msg: str, artifact_names: list[str] | None = None, **kw):
        super().__init__(msg, **kw)
        self.artifact_names = artifact_names or []


class InvalidNextError(RayflowException):
    headline = "Bad transition"


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


class MetaflowNamespaceMismatch(RayflowException):
    headline = "Not in namespace"


class StepFailed(RayflowException):
    """A user step raised; the run stops and can be resumed. The message carries the user's
    own traceback."""

    headline = "Step failed"


class SchedulingError(RayflowException):
    headline = "Cannot schedule"


class TimeoutException(Exception):
    """Raised inside a step by @timeout. Not a RayflowException: it is the step's failure."""
