"""Metaflow's `metaflow.metaflow_config` constants that flows read, with rayflow's values.

Flows import these (`from metaflow.metaflow_config import DATATOOLS_S3ROOT`) to find where
to keep their own data. Each value is read as Metaflow reads it: the `METAFLOW_<NAME>`
environment variable when it is set; otherwise what rayflow's own settings say. The datastore
is rayflow's (`RAYFLOW_DATASTORE`, `--datastore`, or the nearest `.rayflow` folder): when it is
an `s3://` URL, it is `DATASTORE_SYSROOT_S3` and `DEFAULT_DATASTORE` is "s3", and
`DATATOOLS_S3ROOT` is its `data` folder, as in Metaflow.

When the datastore is a local folder, `DATASTORE_SYSROOT_LOCAL` is that folder and
`DATATOOLS_LOCALROOT` its `data` folder (Metaflow's own local root is the folder holding
`.metaflow`; rayflow's datastore folder is where its runs are, `.rayflow` by default).

Values are read once, on import, as in Metaflow. Inside a running step the datastore is the
run's (`current.datastore_url`), whatever the worker's environment says.
"""

from __future__ import annotations

import os

from .exceptions import RayflowException

DATASTORE_LOCAL_DIR = ".rayflow"


def from_conf(name: str, default=None):
    """METAFLOW_<name> from the environment, else `default` (Metaflow's lookup, without its
    JSON config files: rayflow has none)."""
    return os.environ.get(f"METAFLOW_{name}", default)


def rayflow_datastore_url() -> str:
    """The datastore rayflow uses here: the running step's run's, else the configured one."""
    from .current import current
    from .datastore.resolve import default_datastore_url

    return current.datastore_url or default_datastore_url()


def datastore_sysroot_s3(datastore_url: str | None = None) -> str | None:
    url = datastore_url or rayflow_datastore_url()
    return from_conf("DATASTORE_SYSROOT_S3",
                     url.rstrip("/") if url.lower().startswith("s3://") else None)


def datastore_sysroot_local(datastore_url: str | None = None) -> str | None:
    url = datastore_url or rayflow_datastore_url()
    return from_conf("DATASTORE_SYSROOT_LOCAL",
                     None if url.lower().startswith("s3://") else url)


def datatools_s3root(datastore_url: str | None = None) -> str | None:
    """Where `S3(run=...)` keeps a run's data: METAFLOW_DATATOOLS_S3ROOT, else the `data`
    folder of the S3 datastore; None for a run whose datastore is local."""
    sysroot = datastore_sysroot_s3(datastore_url)
    suffix = from_conf("DATATOOLS_SUFFIX", "data")
    return from_conf("DATATOOLS_S3ROOT", f"{sysroot}/{suffix}" if sysroot else None)


def _bool(name: str, default: bool) -> bool:
    raw = from_conf(name)
    if raw is None:
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    raw = from_conf(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise RayflowException(f"METAFLOW_{name}={raw!r} is not a whole number. Set it to one, "
                               "or unset it.") from None


def _at_import(read):
    """A value read when rayflow is imported: a datastore setting that is wrong (e.g. a URL
    with credentials in RAYFLOW_DATASTORE) must not fail the import with a traceback; the
    command that uses the datastore says what is wrong, in one message."""
    try:
        return read()
    except RayflowException:
        return None


DATASTORE_SYSROOT_S3 = _at_import(datastore_sysroot_s3)
DATASTORE_SYSROOT_LOCAL = _at_import(datastore_sysroot_local)
DEFAULT_DATASTORE = from_conf("DEFAULT_DATASTORE", "s3" if DATASTORE_SYSROOT_S3 else "local")
DEFAULT_METADATA = from_conf("DEFAULT_METADATA", "local")
DEFAULT_ENVIRONMENT = from_conf("DEFAULT_ENVIRONMENT", "local")
DEFAULT_PACKAGE_SUFFIXES = from_conf("DEFAULT_PACKAGE_SUFFIXES", ".py,.R,.RDS")
DATATOOLS_SUFFIX = from_conf("DATATOOLS_SUFFIX", "data")
DATATOOLS_S3ROOT = _at_import(datatools_s3root)
DATATOOLS_LOCALROOT = from_conf(
    "DATATOOLS_LOCALROOT",
    os.path.join(DATASTORE_SYSROOT_LOCAL, DATATOOLS_SUFFIX) if DATASTORE_SYSROOT_LOCAL else None)
CARD_SUFFIX = "mf.cards"
CARD_S3ROOT = from_conf("CARD_S3ROOT",
                        f"{DATASTORE_SYSROOT_S3}/{CARD_SUFFIX}" if DATASTORE_SYSROOT_S3 else None)
CARD_LOCALROOT = from_conf("CARD_LOCALROOT")
TEMPDIR = from_conf("TEMPDIR", ".")
USER = from_conf("USER")
S3_ENDPOINT_URL = from_conf("S3_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT_URL"))
S3_VERIFY_CERTIFICATE = from_conf("S3_VERIFY_CERTIFICATE")
S3_SERVER_SIDE_ENCRYPTION = from_conf("S3_SERVER_SIDE_ENCRYPTION")
S3_RETRY_COUNT = _int("S3_RETRY_COUNT", 7)
# rayflow has no metadata service: runs are read from the datastore itself.
SERVICE_URL = from_conf("SERVICE_URL")
SERVICE_HEADERS: dict = {}
DEFAULT_RUNTIME_LIMIT = _int("DEFAULT_RUNTIME_LIMIT", 5 * 24 * 60 * 60)
PROFILE_FROM_START = _bool("PROFILE_FROM_START", False)
KUBERNETES_NAMESPACE = from_conf("KUBERNETES_NAMESPACE", "default")
# @secrets: the type of a source that names none, and the role of one that names none (read
# again by the driver when a run starts: rayflow.plugins.secrets.spec).
DEFAULT_SECRETS_BACKEND_TYPE = from_conf("DEFAULT_SECRETS_BACKEND_TYPE")
DEFAULT_SECRETS_ROLE = from_conf("DEFAULT_SECRETS_ROLE")
