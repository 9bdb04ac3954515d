"""rayflow's client: Metaflow's client API (`Flow`, `Run`, `Step`, `Task`, `DataArtifact`,
`namespace`, `metadata`, tags) over a rayflow datastore.

    from rayflow.client import Flow, namespace
    run = Flow("HelloFlow").latest_successful_run
    run.data.result, run["start"].task.stdout

It reads only the datastore (a local `.rayflow` folder or `s3://...`), so it works on a laptop
with no Ray running. This package must never import ray.
"""

from rayflow.client.artifacts import MetaflowArtifacts, MetaflowData, TaskException
from rayflow.client.base import MetaflowInvalidPathspec, MetaflowObject, ObjectNotFound
from rayflow.client.core import Flow, Metaflow, Run, Step
from rayflow.client.datastores import default_metadata, get_metadata, inspect_spin, metadata
from rayflow.client.namespaces import (
    default_namespace,
    get_namespace,
    get_username,
    namespace,
)
from rayflow.client.task import DataArtifact, Task
from rayflow.exceptions import MetaflowNamespaceMismatch, MetaflowNotFound

__all__ = [
    "DataArtifact",
    "Flow",
    "MetaflowArtifacts",
    "Metaflow",
    "MetaflowData",
    "MetaflowInvalidPathspec",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MetaflowObject",
    "ObjectNotFound",
    "Run",
    "Step",
    "Task",
    "TaskException",
    "default_metadata",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "get_username",
    "inspect_spin",
    "metadata",
    "namespace",
]
