"""Which datastore the client reads: Metaflow's `metadata()` / `get_metadata()`, for rayflow.

In Metaflow the metadata provider and the datastore are two services; in rayflow the datastore
*is* the metadata (run and task records live next to the artifacts), so `metadata()` simply picks
the datastore. It accepts what a user already types elsewhere:

    metadata("/abs/or/relative/path")    a `.rayflow` folder, or a project folder that holds one
    metadata("local@/path")              Metaflow's spelling of the same
    metadata("s3://bucket/prefix")       an S3 datastore (what `--datastore` takes on a cluster)
    metadata("s3@s3://bucket/prefix")    the form `get_metadata()` returns

Until `metadata()` is called the client follows `RAYFLOW_DATASTORE`, else the nearest `.rayflow`
folder, read fresh each time. Every spelling goes through `rayflow.datastore.resolve`, the
resolver the CLI and the runtime use, so `--datastore D` and `metadata(D)` name one folder.
It is named datastores.py, not metadata.py, so that `rayflow.client.metadata` stays the function
Metaflow users call. This module must never import ray.
"""

from __future__ import annotations

import functools

from rayflow.datastore import FlowDataStore
from rayflow.datastore import resolve_datastore_url as normal_url

# None: follow RAYFLOW_DATASTORE and the working folder; a string: the URL `metadata()` chose.
_selected_url: str | None = None


def resolve_datastore_url(spec: str) -> str:
    """Turn anything `metadata()` accepts into the URL `FlowDataStore.from_url` takes: the
    datastore resolver's (`rayflow.datastore.resolve`), the one the CLI and runs use."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"metadata({spec!r}) is not a datastore: pass a local path (e.g. './.rayflow'), "
            f"'local@/path', or 's3://bucket/prefix'."
        )
    return normal_url(spec)


def describe_datastore(url: str) -> str:
    """Metaflow-style description: `local@/abs/path/.rayflow` or `s3@s3://bucket/prefix`."""
    if url.startswith("s3://"):
        return f"s3@{url}"
    return f"local@{url}"


def metadata(spec: str) -> str:
    """Point the client at a datastore; returns its description, as `get_metadata()` would."""
    global _selected_url
    _selected_url = resolve_datastore_url(spec)
    return get_metadata()


def inspect_spin(datastore_root: str = ".") -> str:
    """Point the client at the tasks `spin` ran (Metaflow's inspect_spin): the spin datastore
    beside the datastore at (or, for a project folder, in `.rayflow` under) `datastore_root`.
    Returns its description, as `metadata()` does."""
    from rayflow.datastore.flow_datastore import SPIN_DIR
    from rayflow.datastore.storage import join_path

    url = resolve_datastore_url(datastore_root)
    if url.rstrip("/").rsplit("/", 1)[-1] != SPIN_DIR:
        url = join_path(url, SPIN_DIR)
    return metadata(url)


def get_metadata() -> str:
    """Description of the datastore the client reads now."""
    return describe_datastore(current_datastore_url())


def default_metadata() -> str:
    """Go back to the default datastore (RAYFLOW_DATASTORE, else the nearest `.rayflow`) and
    return its description."""
    global _selected_url
    _selected_url = None
    return get_metadata()


def current_datastore_url() -> str:
    """The URL objects read from when they are not given `datastore=`."""
    if _selected_url is not None:
        return _selected_url
    from rayflow.current import current

    if current.is_running_flow and current.datastore_url:  # inside a step: the run's own
        return current.datastore_url
    return normal_url(None)


@functools.cache
def flow_datastore(url: str, flow_name: str) -> FlowDataStore:
    """One FlowDataStore per (datastore, flow): opening one may connect to S3, which is slow."""
    return FlowDataStore.from_url(url, flow_name)
