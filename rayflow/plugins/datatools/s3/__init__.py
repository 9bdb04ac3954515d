"""Metaflow's `metaflow.plugins.datatools.s3` path; see `rayflow.datatools.s3`."""

from rayflow.datatools.s3 import *  # noqa: F401,F403
from rayflow.datatools.s3 import __all__  # noqa: F401
