"""Fixtures with real servers for the integration tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from selftaught.storage import RetryPolicy, S3Storage
from tests.integration.realdata import smollm2_gguf
from tests.integration.seaweedfs import S3Endpoint, SeaweedFS

#: Retries fast enough for tests, still exercising the retry path.
FAST_RETRY = RetryPolicy(
    attempts=3,
    base_delay=0.05,
    max_delay=0.2,
    deadline=10.0,
    client_attempts=2,
    connect_timeout=1.0,
    read_timeout=10.0,
)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS for the whole session (buckets ``artifacts`` and ``models``)."""
    server = SeaweedFS(buckets=("artifacts", "models"))
    with server:
        yield server


@pytest.fixture
def s3_endpoint(seaweedfs: SeaweedFS) -> S3Endpoint:
    return seaweedfs.endpoint


@pytest.fixture
def s3_storage(s3_endpoint: S3Endpoint) -> S3Storage:
    """A storage under a fresh prefix of the shared bucket, so tests never see each other."""
    return S3Storage(
        f"s3://artifacts/test-{uuid.uuid4().hex[:8]}",
        endpoint=s3_endpoint.url,
        region=s3_endpoint.region,
        addressing_style="path",
        credentials=s3_endpoint.credentials,
        retry=FAST_RETRY,
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunksize=5 * 1024 * 1024,
    )


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a plain safetensors HF directory in the session's model cache.

    Converted once (about 40 s on 2 cores) by the product's own GGUF loader, under its lock, so
    concurrent sessions sharing the cache convert once; a ``seedModel`` naming the .gguf file
    resolves to this same directory."""
    from selftaught.storage import gguf

    return gguf.to_hf_directory(smollm2_gguf(), Path(os.environ["SELFTAUGHT_CACHE"]))
