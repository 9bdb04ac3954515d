"""`metaflow.exception` under rayflow's name: `from rayflow.exception import MetaflowException`.

Every rayflow error is a `MetaflowException` (it is `RayflowException`), so code written for
Metaflow that catches these keeps working.
"""

from .exceptions import (  # noqa: F401 - re-exported for Metaflow's import paths
    CommandException,
    ExternalCommandFailed,
    InvalidDecoratorAttribute,
    InvalidNextException,
    MetaflowDataMissing,
    MetaflowException,
    MetaflowExceptionWrapper,
    MetaflowInternalError,
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowTaggingError,
    MetaflowUnknownUser,
    MissingInMergeArtifactsException,
    ParameterFieldFailed,
    ParameterFieldTypeMismatch,
    UnhandledInMergeArtifactsException,
)
