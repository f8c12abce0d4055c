"""Artifact storage: one small interface, three backends, atomic commits, model resolution.

Stages read and write artifacts only through :class:`Storage`; which backend serves them is
decided by the run's ``spec.storage.uri`` (:func:`open_for_spec`). Tests inject
:class:`MemoryStorage` or run a real SeaweedFS instead of patching boto3.
"""

from selftaught.storage.base import OutputWriter, Storage, decode_jsonl, encode_jsonl, join_key
from selftaught.storage.errors import (
    StorageAuthError,
    StorageCorrupt,
    StorageError,
    StorageNotFound,
    StorageUnavailable,
    UncommittedError,
)
from selftaught.storage.factory import open_for_spec, open_object, open_storage
from selftaught.storage.local import FileStorage
from selftaught.storage.memory import MemoryStorage
from selftaught.storage.models import ModelNotFound, materialize_model, register_model_resolver
from selftaught.storage.retry import NO_RETRY, RetryPolicy, call_with_retry
from selftaught.storage.s3 import S3Storage

__all__ = [
    "NO_RETRY",
    "FileStorage",
    "MemoryStorage",
    "ModelNotFound",
    "OutputWriter",
    "RetryPolicy",
    "S3Storage",
    "Storage",
    "StorageAuthError",
    "StorageCorrupt",
    "StorageError",
    "StorageNotFound",
    "StorageUnavailable",
    "UncommittedError",
    "call_with_retry",
    "decode_jsonl",
    "encode_jsonl",
    "join_key",
    "materialize_model",
    "open_for_spec",
    "open_object",
    "open_storage",
    "register_model_resolver",
]
