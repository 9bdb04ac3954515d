"""Metaflow's data tools (`metaflow.datatools`): the S3 client."""

from .s3 import (
    S3,
    MetaflowS3AccessDenied,
    MetaflowS3Exception,
    MetaflowS3InvalidObject,
    MetaflowS3NotFound,
    MetaflowS3URLException,
    RangeInfo,
    S3GetObject,
    S3Object,
    S3PutObject,
)

__all__ = ["S3", "S3Object", "S3GetObject", "S3PutObject", "RangeInfo", "MetaflowS3Exception",
           "MetaflowS3NotFound", "MetaflowS3AccessDenied", "MetaflowS3URLException",
           "MetaflowS3InvalidObject"]
