"""S3 storage against a real SeaweedFS: round trips, commits, faults and their messages."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from selftaught.api import S3Settings, StorageSpec
from selftaught.artifacts import COMMIT_MARKER
from selftaught.storage import (
    RetryPolicy,
    S3Storage,
    StorageAuthError,
    StorageCorrupt,
    StorageNotFound,
    StorageUnavailable,
    UncommittedError,
    materialize_model,
    open_for_spec,
)
from tests.integration.conftest import FAST_RETRY
from tests.integration.seaweedfs import S3Endpoint, SeaweedFS, free_ports

MiB = 1024 * 1024


def storage_at(endpoint: S3Endpoint, uri: str, **overrides: object) -> S3Storage:
    settings: dict[str, object] = {
        "endpoint": endpoint.url,
        "region": endpoint.region,
        "addressing_style": "path",
        "credentials": endpoint.credentials,
        "retry": FAST_RETRY,
    }
    settings.update(overrides)
    return S3Storage(uri, **settings)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ round trips


def test_bytes_and_jsonl_round_trip(s3_storage: S3Storage) -> None:
    s3_storage.write_bytes("a/b.bin", b"\x00\x01payload")
    assert s3_storage.read_bytes("a/b.bin") == b"\x00\x01payload"
    assert s3_storage.exists("a/b.bin")
    assert not s3_storage.exists("a/missing.bin")
    assert s3_storage.size("a/b.bin") == 9

    rows = [{"i": i, "text": f"héllo {i}"} for i in range(5)]
    assert s3_storage.write_jsonl("rows.jsonl", rows) == 5
    assert [obj for _, obj in s3_storage.read_jsonl("rows.jsonl")] == rows


def test_bad_jsonl_lines_are_reported_with_line_numbers(s3_storage: S3Storage) -> None:
    s3_storage.write_bytes("data.jsonl", b'{"ok": 1}\nnot json\n\n{"ok": 2}\n')
    parsed = list(s3_storage.read_jsonl("data.jsonl"))
    assert [n for n, _ in parsed] == [1, 2, 4]
    assert parsed[0][1] == {"ok": 1}
    assert parsed[2][1] == {"ok": 2}
    assert isinstance(parsed[1][1], ValueError)
    assert "line 2" in str(parsed[1][1])


def test_directory_round_trip_with_multipart_file(s3_storage: S3Storage, tmp_path: Path) -> None:
    source = tmp_path / "model"
    (source / "nested").mkdir(parents=True)
    big = os.urandom(20 * MiB)
    (source / "model.safetensors").write_bytes(big)
    (source / "config.json").write_text('{"model_type": "llama"}')
    (source / "nested" / "tokenizer.json").write_text("{}")

    sizes = s3_storage.upload_dir(source, "models/m1")
    assert sizes == {"config.json": 23, "model.safetensors": 20 * MiB, "nested/tokenizer.json": 2}

    # 20 MiB with 5 MiB parts went up as a multipart upload: its ETag ends in "-<parts>".
    head = s3_storage.client.head_object(
        Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/models/m1/model.safetensors"
    )
    assert head["ETag"].strip('"').endswith("-4")

    target = s3_storage.download_dir("models/m1", tmp_path / "copy")
    assert (target / "model.safetensors").read_bytes() == big
    assert (target / "nested" / "tokenizer.json").read_text() == "{}"


def test_list_and_delete_treat_prefixes_as_directories(s3_storage: S3Storage) -> None:
    for key in ("judge/shard-1/out.jsonl", "judge/shard-10/out.jsonl", "judge/shard-1/x/y"):
        s3_storage.write_bytes(key, b"x")
    assert s3_storage.list("judge/shard-1") == ["judge/shard-1/out.jsonl", "judge/shard-1/x/y"]
    s3_storage.delete_prefix("judge/shard-1")
    assert s3_storage.list("judge") == ["judge/shard-10/out.jsonl"]
    s3_storage.delete_prefix("nothing/here")  # no error


# ------------------------------------------------------------------------------ commits


def test_output_commits_a_manifest_last(s3_storage: S3Storage) -> None:
    prefix = "ns/run/iteration-0/pairs"
    with s3_storage.output(prefix) as out:
        out.write_jsonl("pairs.jsonl", [{"a": 1}, {"a": 2}])
        out.write_bytes("stats.json", b"{}")
        assert not s3_storage.is_committed(prefix)
    assert s3_storage.is_committed(prefix)
    manifest = json.loads(s3_storage.read_bytes(f"{prefix}/{COMMIT_MARKER}"))
    assert manifest["files"] == {"pairs.jsonl": 16, "stats.json": 2}
    assert [o for _, o in s3_storage.read_committed_jsonl(prefix, "pairs.jsonl")] == [
        {"a": 1},
        {"a": 2},
    ]


def test_rerun_replaces_stale_files_and_failed_block_stays_uncommitted(
    s3_storage: S3Storage,
) -> None:
    prefix = "ns/run/iteration-1/judge/shard-00000"
    with s3_storage.output(prefix) as out:
        out.write_bytes("old-only.txt", b"stale")
        out.write_bytes("judgments.jsonl", b"{}\n")
    with pytest.raises(RuntimeError), s3_storage.output(prefix) as out:  # noqa: PT012 (the block is the scenario)
        out.write_bytes("judgments.jsonl", b'{"new": true}\n')
        raise RuntimeError("stage crashed")
    assert not s3_storage.is_committed(prefix)
    with pytest.raises(UncommittedError, match="not committed"):
        list(s3_storage.read_committed_jsonl(prefix, "judgments.jsonl"))

    with s3_storage.output(prefix) as out:
        out.write_bytes("judgments.jsonl", b'{"new": true}\n')
    assert s3_storage.list(prefix) == [f"{prefix}/{COMMIT_MARKER}", f"{prefix}/judgments.jsonl"]


def test_truncated_artifact_is_corrupt(s3_storage: S3Storage) -> None:
    prefix = "ns/run/iteration-0/select"
    with s3_storage.output(prefix) as out:
        out.write_jsonl("instructions.jsonl", [{"instruction": "x" * 100}] * 10)
    s3_storage.write_bytes(
        f"{prefix}/instructions.jsonl", s3_storage.read_bytes(f"{prefix}/instructions.jsonl")[:-7]
    )
    with pytest.raises(StorageCorrupt, match="truncated") as error:
        s3_storage.read_committed_bytes(prefix, "instructions.jsonl")
    assert s3_storage.uri_for(f"{prefix}/instructions.jsonl") in str(error.value)
    with pytest.raises(StorageCorrupt):
        s3_storage.verify(prefix)


def test_server_stopped_mid_output_leaves_prefix_uncommitted_and_rerun_commits(
    tmp_path: Path,
) -> None:
    server = SeaweedFS(data_dir=tmp_path / "weed")
    try:
        endpoint = server.start()
        storage = storage_at(endpoint, "s3://artifacts/run")
        prefix = "ns/run/iteration-0/pairs/shard-00001"
        with pytest.raises(StorageUnavailable), storage.output(prefix) as out:  # noqa: PT012 (the block is the scenario)
            out.write_bytes("part-1.jsonl", b'{"n": 1}\n')
            server.stop()
            out.write_bytes("part-2.jsonl", b'{"n": 2}\n')
        server.start()  # same data directory and ports
        assert storage.exists(f"{prefix}/part-1.jsonl")  # the partial file survived
        assert not storage.is_committed(prefix)
        with storage.output(prefix) as out:
            out.write_bytes("part-2.jsonl", b'{"n": 2}\n')
        assert storage.verify(prefix) == {"part-2.jsonl": 9}
        assert not storage.exists(f"{prefix}/part-1.jsonl")
    finally:
        server.close()


# ------------------------------------------------------------------------------ faults


def test_bad_credentials_raise_auth_error_naming_the_uri(s3_endpoint: S3Endpoint) -> None:
    storage = storage_at(s3_endpoint, "s3://artifacts/x", credentials=("wrong", "wrong-secret"))
    with pytest.raises(StorageAuthError) as error:
        storage.write_bytes("k.txt", b"x")
    assert "s3://artifacts/x/k.txt" in str(error.value)
    assert "AWS_ACCESS_KEY_ID" in str(error.value)


def test_missing_bucket_raises_not_found(s3_endpoint: S3Endpoint) -> None:
    storage = storage_at(s3_endpoint, "s3://no-such-bucket/p")
    with pytest.raises(StorageNotFound, match="bucket 'no-such-bucket' does not exist"):
        storage.read_bytes("k")
    with pytest.raises(StorageNotFound, match="no-such-bucket"):
        storage.is_committed("ns/run")
    with pytest.raises(StorageNotFound, match="no-such-bucket"):
        storage.write_bytes("k", b"x")


def test_unreachable_endpoint_is_unavailable_after_bounded_retries() -> None:
    (port,) = free_ports(1)
    sleeps: list[float] = []
    policy = RetryPolicy(
        attempts=3,
        base_delay=0.01,
        max_delay=0.05,
        deadline=10.0,
        client_attempts=1,
        connect_timeout=0.5,
        sleep=sleeps.append,
    )
    endpoint = S3Endpoint(url=f"http://127.0.0.1:{port}", access_key="a", secret_key="b")
    storage = storage_at(endpoint, "s3://artifacts/p", retry=policy)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as error:
        storage.read_bytes("k")
    assert time.monotonic() - started < 10
    assert len(sleeps) == 2  # three attempts, two pauses
    message = str(error.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3://artifacts/p/k" in message
    assert "3 attempt(s)" in message


# ------------------------------------------------------------------------------ wiring


def test_open_for_spec_takes_credentials_from_the_environment(
    s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)
    spec = StorageSpec(
        uri=f"s3://artifacts/spec-{uuid.uuid4().hex[:6]}",
        s3=S3Settings(endpoint=s3_endpoint.url, addressing_style="path"),
    )
    storage = open_for_spec(spec, retry=FAST_RETRY)
    storage.write_bytes("hello.txt", b"hi")
    assert storage.read_bytes("hello.txt") == b"hi"
    assert storage.uri_for("hello.txt") == f"{spec.uri}/hello.txt"


def test_materialize_model_downloads_a_committed_model_once(
    s3_endpoint: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)
    root = f"s3://models/m-{uuid.uuid4().hex[:6]}"
    storage = storage_at(s3_endpoint, root)
    local = tmp_path / "trained"
    local.mkdir()
    (local / "config.json").write_text('{"model_type": "llama"}')
    (local / "weights.bin").write_bytes(b"w" * 1000)
    with storage.output("ns/run/iteration-1/train") as out:
        out.upload_dir(local, "model")
        out.write_bytes("metrics.json", b"{}")

    settings = S3Settings(endpoint=s3_endpoint.url, addressing_style="path")
    uri = f"{root}/ns/run/iteration-1/train/model"
    cache = tmp_path / "cache"
    path = materialize_model(uri, cache, s3=settings, retry=FAST_RETRY)
    assert (path / "weights.bin").read_bytes() == b"w" * 1000
    assert not (path / "metrics.json").exists()

    storage.delete_prefix("ns")  # the second call must come from the cache
    assert materialize_model(uri, cache, s3=settings, retry=FAST_RETRY) == path

    with pytest.raises(UncommittedError, match="not a committed output"):
        materialize_model(f"{root}/ns/other/model", cache, s3=settings, retry=FAST_RETRY)
