"""Model resolution (file://, registered schemes, plain names in the cache) and the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftaught.api import S3Settings, StorageSpec
from selftaught.storage import (
    FileStorage,
    ModelNotFound,
    S3Storage,
    materialize_model,
    models,
    open_for_spec,
    open_object,
    open_storage,
    register_model_resolver,
)


def make_model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    return path


def test_file_uri_is_used_in_place(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    assert materialize_model(f"file://{model}", tmp_path / "cache") == model


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        pytest.param("absent", "is not a directory", id="missing-dir"),
        pytest.param("empty", "no config.json", id="no-config"),
    ],
)
def test_file_uri_without_a_model_is_a_clear_error(tmp_path: Path, setup: str, match: str) -> None:
    target = tmp_path / "m"
    if setup == "empty":
        target.mkdir()
    with pytest.raises(ModelNotFound, match=match) as error:
        materialize_model(f"file://{target}", tmp_path)
    assert str(target) in str(error.value)


def test_registered_scheme_resolves_through_its_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_RESOLVERS", {})  # leave the real registry untouched
    seen: list[tuple[str, Path]] = []

    def resolve(uri: str, cache: Path) -> Path:
        seen.append((uri, cache))
        return make_model(cache / "made")

    register_model_resolver("unittest", resolve)
    assert materialize_model("unittest://judge", tmp_path) == tmp_path / "made"
    assert seen == [("unittest://judge", tmp_path)]


def test_unknown_scheme_names_the_scheme(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="no resolver for model URI scheme 'gopher://'"):
        materialize_model("gopher://x", tmp_path)


def test_plain_name_in_the_cache_as_a_directory(tmp_path: Path) -> None:
    model = make_model(tmp_path / "org" / "judge-8b")
    assert materialize_model("org/judge-8b", tmp_path) == model


@pytest.mark.parametrize("hub_root", ["", "hub"], ids=["cache-is-hub", "hf-home-layout"])
def test_plain_name_in_the_hub_layout(tmp_path: Path, hub_root: str) -> None:
    repo = tmp_path / hub_root / "models--org--judge"
    make_model(repo / "snapshots" / "old")
    current = make_model(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    assert materialize_model("org/judge", tmp_path) == current


def test_plain_name_missing_says_no_hub_downloads(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"not in the model cache .*never download"):
        materialize_model("meta-llama/Meta-Llama-3-70B-Instruct", tmp_path)


def test_open_storage_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage(f"file://{tmp_path}"), FileStorage)
    s3 = open_storage("s3://bucket/pre/fix", endpoint="http://127.0.0.1:1", addressing_style="path")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.endpoint) == ("bucket", "pre/fix", "http://127.0.0.1:1")
    assert s3.uri_for("a/b") == "s3://bucket/pre/fix/a/b"
    with pytest.raises(ValueError, match="unsupported storage URI"):
        open_storage("gs://bucket")
    with pytest.raises(ValueError, match="addressing_style"):
        open_storage("s3://bucket", addressing_style="sideways")


def test_open_for_spec_passes_the_s3_settings() -> None:
    spec = StorageSpec(
        uri="s3://artifacts/runs",
        s3=S3Settings(endpoint="http://minio:9000", region="eu-west-1", addressing_style="path"),
    )
    storage = open_for_spec(spec)
    assert isinstance(storage, S3Storage)
    assert (storage.endpoint, storage.region, storage.addressing_style) == (
        "http://minio:9000",
        "eu-west-1",
        "path",
    )


def test_open_object_splits_a_dataset_uri(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"a": 1}\n')
    storage, key = open_object(f"file://{tmp_path}/data.jsonl")
    assert key == "data.jsonl"
    assert list(storage.read_jsonl(key)) == [(1, {"a": 1})]
    s3, name = open_object("s3://bucket/sets/rb.jsonl")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, name) == (
        "bucket",
        "sets",
        "rb.jsonl",
    )
    top, leaf = open_object("s3://bucket/rb.jsonl")
    assert isinstance(top, S3Storage)
    assert (top.prefix, leaf) == ("", "rb.jsonl")
    with pytest.raises(ValueError, match="not an object URI"):
        open_object("s3://bucket/")
