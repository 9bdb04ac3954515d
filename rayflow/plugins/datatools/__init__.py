"""Metaflow's `metaflow.plugins.datatools` path; see `rayflow.datatools`."""

from rayflow.datatools import S3, MetaflowS3Exception

__all__ = ["S3", "MetaflowS3Exception"]
