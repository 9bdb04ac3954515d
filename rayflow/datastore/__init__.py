"""rayflow's datastore: where checkpoints, records and logs live (docs/DATASTORE_API.md).

Layers, each knowing nothing of the one above: storage (bytes, `storage.py`, `local.py`,
`s3.py`), the content-addressed store (`cas.py`), serializers (`serializers.py`), records
(`records.py`) and the per-flow view (`flow_datastore.py`). The datastore works without Ray and
never imports it, so the client and tools can read a datastore on a laptop with nothing running.
The S3 backend (s3fs) is imported only when an s3:// URL is used.
"""

from rayflow.datastore.cas import ContentAddressedStore, SavedBlob, blob_hash
from rayflow.datastore.flow_datastore import FlowDataStore
from rayflow.datastore.local import LocalStorage, atomic_write
from rayflow.datastore.records import ArtifactInfo, RunRecord, TaskRecord
from rayflow.datastore.resolve import default_datastore_url, resolve_datastore_url
from rayflow.datastore.serializers import SerializedArtifact, deserialize, serialize
from rayflow.datastore.storage import (
                                       DataStoreStorage,
                                       MissingBackendError,
                                       get_storage,
                                       register_backend,
)

__all__ = [
    "ArtifactInfo", "ContentAddressedStore", "DataStoreStorage", "FlowDataStore",
    "LocalStorage", "MissingBackendError", "RunRecord", "SavedBlob", "SerializedArtifact",
    "TaskRecord", "atomic_write", "blob_hash", "default_datastore_url", "deserialize",
    "get_storage", "register_backend", "resolve_datastore_url", "serialize",
]
