"""From a URI (or the run's ``spec.storage``) to a :class:`Storage`."""

from __future__ import annotations

from urllib.parse import urlparse

from selftaught.api import StorageSpec
from selftaught.storage.base import Storage
from selftaught.storage.local import FileStorage, path_from_uri
from selftaught.storage.retry import RetryPolicy
from selftaught.storage.s3 import S3Storage, split_s3_uri


def open_storage(
    uri: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    addressing_style: str = "auto",
    retry: RetryPolicy | None = None,
) -> Storage:
    """A storage rooted at ``uri``: ``file:///abs/path`` or ``s3://bucket/prefix``.

    The S3 arguments are ignored for file:// URIs; credentials come from the environment.
    """
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return FileStorage(uri)
    if scheme == "s3":
        return S3Storage(
            uri, endpoint=endpoint, region=region, addressing_style=addressing_style, retry=retry
        )
    raise ValueError(f"unsupported storage URI (want s3://bucket/prefix or file:///path): {uri}")


def open_for_spec(storage_spec: StorageSpec, *, retry: RetryPolicy | None = None) -> Storage:
    """The run's artifact storage, as ``spec.storage`` describes it."""
    s3 = storage_spec.s3
    return open_storage(
        storage_spec.uri,
        endpoint=s3.endpoint if s3 else None,
        region=s3.region if s3 else None,
        addressing_style=s3.addressing_style if s3 else "auto",
        retry=retry,
    )


def open_object(
    uri: str, *, storage_spec: StorageSpec | None = None, retry: RetryPolicy | None = None
) -> tuple[Storage, str]:
    """A storage and key for one object URI (a dataset file given by the user).

    ``s3://b/data/x.jsonl`` -> (storage at ``s3://b/data``, ``"x.jsonl"``), connected with the
    run's S3 settings, because user datasets usually live in the same store as the artifacts.
    """
    scheme = urlparse(uri).scheme
    if scheme == "file":
        path = path_from_uri(uri)
        return FileStorage(path.parent), path.name
    if scheme != "s3":
        raise ValueError(f"unsupported object URI (want s3://bucket/key or file:///path): {uri}")
    bucket, key = split_s3_uri(uri)
    folder, _, name = key.rpartition("/")
    if not name:
        raise ValueError(f"not an object URI (want s3://bucket/key): {uri}")
    s3 = storage_spec.s3 if storage_spec else None
    storage = S3Storage(
        f"s3://{bucket}/{folder}",
        endpoint=s3.endpoint if s3 else None,
        region=s3.region if s3 else None,
        addressing_style=s3.addressing_style if s3 else "auto",
        retry=retry,
    )
    return storage, name
