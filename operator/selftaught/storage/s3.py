"""``s3://bucket/prefix`` storage through boto3, for AWS S3 and any S3-compatible store.

Self-hosted stores (MinIO, SeaweedFS, Ceph) need a custom endpoint and usually path-style
addressing. Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` injected from the run's Secret, or the pod's identity), unless given
explicitly. Model directories go up with multipart uploads (boto3's ``TransferConfig``), so a
multi-GB safetensors shard is sent in parallel parts and a failed part is retried alone.

Every operation runs inside :func:`call_with_retry`; botocore's own retries handle single
requests. botocore exceptions are translated into the :mod:`selftaught.storage.errors` family
with messages that name the URI and what to check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from selftaught.storage.base import Storage, join_key
from selftaught.storage.errors import (
    StorageAuthError,
    StorageError,
    StorageNotFound,
    StorageUnavailable,
)
from selftaught.storage.retry import RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

MiB = 1024 * 1024
#: Error codes that mean "the credentials are wrong or lack permission".
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
#: Error codes worth retrying (throttling and server-side hiccups); any 5xx also counts.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "RequestLimitExceeded",
    }
)


class BucketNotFound(StorageNotFound):
    """The bucket itself is missing (as opposed to one key in it)."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URI (want s3://bucket/prefix): {uri}")
    return parsed.netloc, parsed.path.strip("/")


class S3Storage(Storage):
    """Artifacts as objects under ``s3://bucket/prefix``."""

    def __init__(
        self,
        uri: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        credentials: tuple[str, str] | None = None,
        retry: RetryPolicy | None = None,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 4,
    ) -> None:
        """Args beyond the URI: ``endpoint`` (URL of a non-AWS store), ``region``,
        ``addressing_style`` ("auto", "path", "virtual"), ``credentials`` as (key id, secret)
        instead of the environment, ``retry`` policy, and the multipart settings: files of at
        least ``multipart_threshold`` bytes go up in ``multipart_chunksize`` parts (S3 requires
        parts of at least 5 MiB), ``max_concurrency`` at a time.
        """
        if addressing_style not in ("auto", "path", "virtual"):
            raise ValueError(f"addressing_style must be auto, path or virtual: {addressing_style}")
        self.bucket, self.prefix = split_s3_uri(uri)
        self.endpoint = endpoint
        self.region = region
        self.addressing_style = addressing_style
        self.retry = retry or RetryPolicy()
        self._credentials = credentials
        self._transfer_settings = (multipart_threshold, multipart_chunksize, max_concurrency)
        self._client: S3Client | None = None
        self._transfer: Any = None
        self._bucket_checked = False
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- plumbing

    @property
    def client(self) -> S3Client:
        """The boto3 client, built on first use (boto3 is imported only by S3 users)."""
        with self._lock:
            if self._client is None:
                import boto3
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                config = Config(
                    region_name=self.region,
                    signature_version="s3v4",
                    s3={"addressing_style": self.addressing_style},  # type: ignore[arg-type]
                    retries={"max_attempts": self.retry.client_attempts, "mode": "standard"},
                    connect_timeout=self.retry.connect_timeout,
                    read_timeout=self.retry.read_timeout,
                )
                key_id, secret = self._credentials or (None, None)
                session = boto3.session.Session(
                    aws_access_key_id=key_id, aws_secret_access_key=secret
                )
                self._client = session.client("s3", endpoint_url=self.endpoint, config=config)
                threshold, chunk, concurrency = self._transfer_settings
                self._transfer = TransferConfig(
                    multipart_threshold=threshold,
                    multipart_chunksize=chunk,
                    max_concurrency=concurrency,
                )
            return self._client

    def _object_key(self, key: str) -> str:
        return join_key(self.prefix, key)

    def uri_for(self, key: str) -> str:
        return f"s3://{join_key(self.bucket, self._object_key(key))}"

    def _where(self) -> str:
        return f"endpoint {self.endpoint}" if self.endpoint else "AWS S3"

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate botocore's exceptions into the storage family."""
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bce

        uri = self.uri_for(key)
        try:
            yield
        except S3UploadFailedError as error:
            cause = error.__context__
            if isinstance(cause, bce.ClientError):
                raise self._client_error(cause, uri) from error
            raise StorageError(f"upload to {uri} failed: {error}", uri=uri) from error
        except bce.ClientError as error:
            raise self._client_error(error, uri) from error
        except (bce.NoCredentialsError, bce.PartialCredentialsError) as error:
            raise StorageAuthError(
                f"no S3 credentials for {uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(storage.s3.accessKeyId/secretAccessKey) or give the pod an identity",
                uri=uri,
            ) from error
        except (bce.ConnectionError, bce.HTTPClientError) as error:
            raise StorageUnavailable(
                f"cannot reach {self._where()} for {uri}: {error} (check storage.s3.endpoint and "
                "that the store is running and reachable from the pod)",
                uri=uri,
            ) from error

    def _client_error(self, error: Any, uri: str) -> StorageError:
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in AUTH_CODES or status == 403:
            return StorageAuthError(
                f"{self._where()} refused the credentials for {uri} ({code or status}): check "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the Secret named in storage.s3) and the "
                "bucket policy",
                uri=uri,
            )
        if code == "NoSuchBucket":
            return self._no_bucket(uri)
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return StorageNotFound(f"no object at {uri}", uri=uri)
        if code in TRANSIENT_CODES or status >= 500:
            return StorageUnavailable(
                f"{self._where()} is unavailable for {uri} ({code or status}); retry later", uri=uri
            )
        return StorageError(f"S3 error on {uri}: {code or status}: {error}", uri=uri)

    def _no_bucket(self, uri: str) -> BucketNotFound:
        return BucketNotFound(
            f"bucket '{self.bucket}' does not exist at {self._where()} (for {uri}): create it or "
            "fix storage.uri",
            uri=uri,
        )

    def _run(self, key: str, what: str, operation: Callable[[], T]) -> T:
        def attempt() -> T:
            with self._errors(key):
                return operation()

        return call_with_retry(attempt, self.retry, f"{what} {self.uri_for(key)}")

    def _check_bucket(self) -> None:
        """After a 404 on an object, tell a missing bucket apart from a missing key (once)."""
        if self._bucket_checked:
            return
        try:
            self._run("", "checking bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except StorageNotFound as error:
            raise self._no_bucket(self.uri_for("")) from error
        self._bucket_checked = True

    # ---------------------------------------------------------------- primitives

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BucketNotFound:
            raise
        except StorageNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        def head() -> int:
            return int(
                self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))[
                    "ContentLength"
                ]
            )

        try:
            return self._run(key, "reading", head)
        except StorageNotFound:
            self._check_bucket()
            raise

    def read_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            return response["Body"].read()

        return self._run(key, "reading", get)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._run(
            key,
            "writing",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=self._object_key(key), Body=bytes(data)
            ),
        )

    def upload_file(self, local_path: Path, key: str) -> None:
        """Upload with multipart above the threshold (parts retried by s3transfer)."""
        client = self.client
        self._run(
            key,
            "uploading",
            lambda: client.upload_file(
                str(local_path), self.bucket, self._object_key(key), Config=self._transfer
            ),
        )

    def download_file(self, key: str, local_path: Path) -> None:
        client = self.client
        Path(local_path).parent.mkdir(parents=True, exist_ok=True)
        self._run(
            key,
            "downloading",
            lambda: client.download_file(
                self.bucket, self._object_key(key), str(local_path), Config=self._transfer
            ),
        )

    def list(self, prefix: str = "") -> list[str]:
        base = self._object_key(prefix)

        def listing() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            found: list[str] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                found.extend(item["Key"] for item in page.get("Contents", []))
            return found

        keys = self._run(prefix, "listing", listing)
        root = self.prefix + "/" if self.prefix else ""
        inside = [k for k in keys if not base or k == base or k.startswith(base + "/")]
        return sorted(k[len(root) :] for k in inside)

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._object_key(k) for k in self.list(prefix)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = keys[start : start + 1000]

            def delete(batch: list[str] = batch) -> None:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"could not delete {len(errors)} object(s) under {self.uri_for(prefix)}, "
                        f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                        uri=self.uri_for(prefix),
                    )

            self._run(prefix, "deleting", delete)
