"""Which datastore a spelling names: the one resolver of datastore URLs.

The CLI (`--datastore`), the run loop, the workers (`FlowDataStore.from_url`), `rayflow spin`
and the client (`metadata()`, `datastore=`) all turn what the user wrote into a URL here, so
the same spelling names the same datastore everywhere:

    None or ""            RAYFLOW_DATASTORE if set (resolved by these same rules), else the
                          default below
    "local"               the default: the nearest `.rayflow` folder walking up from the
                          working folder, else `./.rayflow` (not created here); as Metaflow's
                          `--datastore local`
    "relative/path"       made absolute against the working folder (~ expanded)
    "/a/folder"           itself; but a folder that holds a `.rayflow` folder (a project
                          folder) means that `.rayflow`, as in Metaflow's `metadata()`
    "local@/path"         Metaflow's spelling of a local path; "file:///path" too
    "s3://bucket/prefix"  itself, without a trailing slash; "s3@s3://..." (what
                          `get_metadata()` returns) too
    "gs://..." and others itself (a backend registered for the protocol serves it)

Applied to its own result it returns that result, so a URL resolved once (the run's, sent to
its workers) can be resolved again anywhere. This module never imports a backend or ray.
"""

from __future__ import annotations

import os

from rayflow import settings
from rayflow.exceptions import DataStoreError

DEFAULT_DATASTORE_DIRNAME = ".rayflow"
# The environment that decides how an s3:// datastore is reached: the driver hands it to its
# workers (RunContext.datastore_env), so each reaches the datastore the driver checked.
DATASTORE_ENV_PREFIXES = ("AWS_", settings.DATASTORE_OUTAGE_S.name)
# What a step's own S3 client (rayflow.S3) reads, whatever the datastore: the AWS variables and
# Metaflow's S3 settings (rayflow.metaflow_config). A worker of a warm or remote Ray did not
# start with the driver's environment, so the driver hands these over too.
S3_CLIENT_ENV_PREFIXES = ("AWS_", "METAFLOW_DATATOOLS_", "METAFLOW_DATASTORE_SYSROOT_S3",
                          "METAFLOW_S3_", "METAFLOW_TEMPDIR")


def resolve_datastore_url(spec: str | None = None) -> str:
    """The datastore URL `spec` names (see the module's table); None: the configured one."""
    if spec is not None and not isinstance(spec, str):
        raise DataStoreError(f"The datastore {spec!r} is not a folder or a URL. Pass a folder "
                             "or s3://bucket/prefix with --datastore, or set RAYFLOW_DATASTORE.")
    spec = (spec or "").strip()
    if not spec:
        spec = settings.DATASTORE.get() or "local"
    return _resolve(spec)


def default_datastore_url() -> str:
    """The datastore used when none is given: `resolve_datastore_url(None)`."""
    return resolve_datastore_url(None)


def _resolve(spec: str) -> str:
    if spec == "local":
        return _nearest_local()
    for prefix in ("local@", "s3@"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):].strip()
            break
    if "://" in spec:
        protocol, rest = spec.split("://", 1)
        protocol = protocol.lower()
        if protocol != "file":
            _refuse_credentials(protocol, rest)
        if protocol == "s3":
            return spec.rstrip("/")
        if protocol != "file":
            return spec
        spec = rest
    if not spec:
        raise DataStoreError("The datastore's path is empty. Pass a folder or "
                             "s3://bucket/prefix with --datastore, or set RAYFLOW_DATASTORE.")
    path = os.path.abspath(os.path.expanduser(spec))
    nested = os.path.join(path, DEFAULT_DATASTORE_DIRNAME)
    if os.path.basename(path) != DEFAULT_DATASTORE_DIRNAME and os.path.isdir(nested):
        return nested
    return path


def _refuse_credentials(protocol: str, rest: str) -> None:
    """A URL such as s3://KEY:SECRET@bucket/x is refused, and never echoed: messages,
    run records and shell history would keep the secret."""
    authority, _, path = rest.partition("/")
    if "@" not in authority:
        return
    host = authority.rpartition("@")[2]
    shown = f"{protocol}://***@{host}" + (f"/{path}" if path else "")
    plain = f"{protocol}://{host}" + (f"/{path}" if path else "")
    raise DataStoreError(
        f"The datastore URL {shown} carries credentials before its '@'. rayflow does not "
        f"take them from a URL, where messages, run records and shell history would keep "
        f"them. Pass {plain} and give the credentials as the storage's client reads them "
        f"(for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE).")


def _nearest_local() -> str:
    here = os.path.abspath(os.getcwd())
    while True:
        candidate = os.path.join(here, DEFAULT_DATASTORE_DIRNAME)
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    return os.path.abspath(DEFAULT_DATASTORE_DIRNAME)


def datastore_env(url: str) -> dict[str, str]:
    """The environment that decides how the datastore at `url` (if s3://) and the steps' own
    S3 client reach S3."""
    prefixes = S3_CLIENT_ENV_PREFIXES
    if url.startswith("s3://"):
        prefixes += DATASTORE_ENV_PREFIXES
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
